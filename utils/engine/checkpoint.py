"""Checkpoint reading and writing.

`load_weights` loads network weights strictly and says exactly what is wrong when a
file does not fit (the original code loaded whatever it was given). It accepts the
layouts met in practice: a plain state dict (the released LPG/DeepLab files), one
stored under 'state_dict' or 'model' (our training checkpoints), and keys prefixed
with 'module.' (the original wrapped every model in DataParallel).

`save_checkpoint` writes atomically, so an interrupted run never leaves a truncated
checkpoint behind for `--resume` to choke on.

Files are read with `torch.load(weights_only=True)`: tensors, numbers, strings and
containers of them load, arbitrary pickled Python objects do not (store `vars(args)`,
not an argparse.Namespace).
"""
import os
import pickle
from collections.abc import Mapping

import torch
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from .errors import InputError, MissingFile
from .files import atomic_open

MODULE_PREFIX = 'module.'
_SHOW = 5  # keys listed per category in an error message


def strip_module_prefix(state_dict):
    """Returns a copy of `state_dict` without the 'module.' prefix that
    DataParallel / DistributedDataParallel put on every key."""
    state_dict = dict(state_dict)
    consume_prefix_in_state_dict_if_present(state_dict, MODULE_PREFIX)
    return state_dict


def load_checkpoint(path, map_location='cpu', weights_only=True):
    """Reads a checkpoint written by torch.save.

    Raises FileNotFoundError naming `path` when it does not exist and ValueError
    naming it when it cannot be read as a torch checkpoint. Pass weights_only=False
    only for trusted files that hold pickled Python objects.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFile(f'checkpoint not found: {path}')
    with open(path, 'rb') as handle:
        head = handle.read(4)
    # torch.save writes a zip archive (PK..); files of torch < 1.6 start with a pickle protocol byte.
    if not (head.startswith(b'PK\x03\x04') or head[:1] == b'\x80'):
        raise InputError(f'{path} is not a checkpoint (not a file written by torch.save)')
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as err:
        if weights_only and 'weights_only' in str(err):
            raise InputError(f'{path} holds Python objects other than tensors and plain containers; '
                             f'if it is a trusted file, load it with weights_only=False ({err})') from err
        raise InputError(f'cannot read checkpoint {path}: {err}') from err
    except Exception as err:  # zip/pickle/EOF errors differ between torch versions
        raise InputError(f'cannot read checkpoint {path}: {type(err).__name__}: {err}') from err


def unwrap_state_dict(checkpoint, path='<checkpoint>'):
    """The state dict inside a loaded checkpoint: the object itself, or its 'state_dict'
    or 'model' entry; 'module.' prefixes removed."""
    if not isinstance(checkpoint, Mapping):
        raise InputError(f'{path} does not hold a state dict (found {type(checkpoint).__name__})')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    return strip_module_prefix(checkpoint)


def _listing(title, items):
    shown = ', '.join(items[:_SHOW]) + (f', ... ({len(items) - _SHOW} more)' if len(items) > _SHOW else '')
    return f'\n  {title} ({len(items)}): {shown}'


def _shape(value):
    return list(value.shape) if torch.is_tensor(value) else type(value).__name__


def describe_mismatch(model_state, state_dict):
    """Missing, unexpected and mis-shaped keys of `state_dict` against `model_state`,
    as text lines for an error message ('' when they fit)."""
    missing = [k for k in model_state if k not in state_dict]
    unexpected = [k for k in state_dict if k not in model_state]
    misshaped = [f'{k}: checkpoint {_shape(v)} vs model {list(model_state[k].shape)}'
                 for k, v in state_dict.items()
                 if k in model_state and (not torch.is_tensor(v) or v.shape != model_state[k].shape)]
    text = ''
    if missing:
        text += _listing('missing keys', missing)
    if unexpected:
        text += _listing('unexpected keys', unexpected)
    if misshaped:
        text += _listing('mis-shaped keys', misshaped)
    return text


def non_finite_keys(state_dict):
    """Keys of the floating-point tensors that hold a NaN or an infinity."""
    return [k for k, v in state_dict.items()
            if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]


def load_weights(model, path, what=None):
    """Loads the weights in `path` into `model` strictly and returns `model`.

    `what` names the expected network in error messages (e.g. 'LPGNet(in_channels=5)');
    it defaults to the model's class name. A file that does not fit raises a ValueError
    naming the file, the network and the missing / unexpected / mis-shaped keys, e.g. a
    21-class VOC backbone given where the 61-class COCO-60 one is needed.
    """
    path = os.fspath(path)
    return load_state(model, unwrap_state_dict(load_checkpoint(path), path), path, what)


def load_state(model, state_dict, path, what=None):
    """load_weights of a state dict already read from `path` (which the messages name)."""
    check_state(model, state_dict, path, what)
    model.load_state_dict(state_dict, strict=True)
    return model


def check_state(model, state_dict, path, what=None):
    """That `model` can load `state_dict`, read from `path`: the same keys and shapes, every weight finite;
    refused naming the file and what differs. Nothing is loaded, so `model` may be built on the meta device."""
    what = what or type(model).__name__
    problems = describe_mismatch(model.state_dict(), state_dict)
    if problems:
        raise InputError(f'{path} does not hold the weights of {what}:{problems}')
    bad = non_finite_keys(state_dict)
    if bad:
        raise InputError(f'{path} holds non-finite weights (NaN or infinity in {len(bad)} tensors, e.g. {bad[0]}): '
                         'it comes from a run that diverged; use an earlier checkpoint')


def check_weights(model, path, what=None):
    """load_weights without loading (check_state): a run checks the checkpoints it will read before it writes
    anything, on a model built on the meta device (no memory, no random numbers drawn)."""
    path = os.fspath(path)
    check_state(model, unwrap_state_dict(load_checkpoint(path), path), path, what)


def save_checkpoint(path, /, **state):
    """Writes `state` (a dict of tensors / state dicts / plain values) to `path` atomically:
    torch.save to a temporary file in the same directory, then os.replace, so readers see
    either the old file or the complete new one. Creates missing parent directories."""
    with atomic_open(path) as handle:
        torch.save(state, handle)
    return path


def save_training_state(path, model, optimizer, iteration, args, resume_state=None):
    """What `--resume` needs: model, optimizer (with its learning rates), the iterations done, and resume_state:
    where the sample stream stands and the random states (utils.engine.run_outputs.RunOutputs.resume_state)."""
    return save_checkpoint(path, model=model.state_dict(), optimizer=optimizer.state_dict(), iteration=iteration,
                           args=vars(args), resume=resume_state)


def resume_training(path, model, optimizer):
    """Restore a `save_training_state` file into model and optimizer; returns (the iterations already done, its
    resume_state or None) ((0, None) when there is no such file yet). A file of another network is refused with
    a short summary."""
    if not os.path.exists(path):
        return 0, None
    state = load_checkpoint(path)
    if not isinstance(state, Mapping) or not {'model', 'optimizer', 'iteration'} <= set(state):
        raise InputError(f'{path} is not a training state to resume from (it lacks model, optimizer or iteration)')
    weights = strip_module_prefix(state['model'])
    problems = describe_mismatch(model.state_dict(), weights)
    if problems:
        raise InputError(f'cannot resume from {path}: it holds another network than {type(model).__name__} '
                         f'(were --model_type, --dataset or --round changed?){problems}')
    model.load_state_dict(weights)
    try:
        optimizer.load_state_dict(state['optimizer'])
    except ValueError as error:
        raise InputError(f'cannot resume from {path}: its optimizer state does not fit ({error})') from None
    print(f'resumed from {path} at iteration {state["iteration"]}')
    return state['iteration'], state.get('resume')
