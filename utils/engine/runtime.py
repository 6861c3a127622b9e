"""What every script shares: the device flags, seeding and the scripts' error handling."""
import argparse
import errno
import os
import random

import numpy as np
import torch

from utils.engine.distributed import close_distributed
from utils.engine.flags import SEED, WORKERS
from utils.engine.interrupts import INTERRUPTS

from .errors import FlagError, InputError
from .files import release_folders


def str2bool(value):
    """Parse true/false flags properly (the original's `type=bool` turned `--cuda False` into True)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ('1', 'true', 't', 'yes', 'y', 'on'):
        return True
    if text in ('0', 'false', 'f', 'no', 'n', 'off'):
        return False
    raise argparse.ArgumentTypeError(f'expected true or false, got {value!r}')


def comma_list(text):
    """Flag type: 'a,b,c' -> ['a', 'b', 'c'] (empty items dropped)."""
    return [item.strip() for item in text.split(',') if item.strip()]


comma_list.comma_joined = True  # command_line writes a list back as one comma list


def add_device_args(parser, workers=None, seed=False):
    """`--cuda [true|false]` (default: use a GPU when there is one); `--workers N` when the script loads data
    in worker processes (default `workers`), `--seed N` when it draws random numbers."""
    parser.add_argument('--cuda', type=str2bool, nargs='?', const=True, default=None,
                        help='run on the GPU (true) or the CPU (false); default: the GPU when one is available')
    if workers is not None:
        parser.add_argument('--workers', type=WORKERS, default=workers, help='data-loading worker processes')
    if seed:
        parser.add_argument('--seed', type=SEED, default=0, help='random seed (data order, augmentation, weights)')
        parser.add_argument('--deterministic', action='store_true',
                            help='deterministic algorithms (torch.use_deterministic_algorithms; on a GPU the few ops '
                            'without one warn), so that a run repeats exactly on the same machine and thread count')


def with_values(args, **values):
    """A copy of the parsed flags `args` with `values` set: how a script resolves defaults without changing the
    namespace its caller holds (run_rounds.py asks each script's completion with its own)."""
    return argparse.Namespace(**{**vars(args), **values})


def command_line(parser, **settings):
    """The argv that gives `settings` ({flag's dest: value}) to the script of `parser`, in the order given: None
    is left out, and so is False for a store_true flag, where True is the bare flag; a list or tuple is one flag
    with several values
    (nargs) or, for a comma_list flag, one comma list; other values are passed as str(value). A name the parser
    has no flag for is an error, so a misspelt setting fails where the command is built, not in a step's log.
    Scripts offer it for their own parser as `command_line(**settings)`."""
    actions = {action.dest: action for action in parser._actions if action.option_strings}
    argv = []
    for dest, value in settings.items():
        if dest not in actions:
            raise KeyError(f'{parser.prog} has no flag for the setting {dest!r}')
        action = actions[dest]
        flag = f'--{dest}' if f'--{dest}' in action.option_strings else action.option_strings[0]
        if action.nargs == 0:  # store_true
            argv += [flag] if value else []
        elif value is None:
            continue
        elif isinstance(value, (list, tuple)):
            if getattr(action.type, 'comma_joined', False):
                argv += [flag, ','.join(str(v) for v in value)]
            elif action.nargs in ('+', '*'):
                argv += [flag] + [str(v) for v in value]
            else:
                raise TypeError(f'{parser.prog} {flag} takes one value, not {value!r}')
        else:
            argv += [flag, str(value)]
    return argv


def seed_everything(seed, deterministic=False):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; ops that have no deterministic CUDA kernel warn
        # rather than stop the run.
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


# Operating-system errors the user fixes (a read-only or full disk, a folder without permission, an output path
# through a file): one line naming the file and the cause.
USER_FIXABLE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR}


def run_script(main, parser):
    """Parse the flags and run `main`. Bad input (utils.engine.errors.InputError: a missing or malformed file, a bad
    flag) and an output the OS refuses (no permission, a read-only or full disk) end with one line naming the
    file and the problem (exit status 1; a refused flag, utils.engine.errors.FlagError, exit status 2, as argparse);
    any other exception is a bug and keeps its traceback. Signals are handled
    (utils/engine/interrupts.py); claimed output folders and a torchrun process group are given back on the
    way out."""
    args = parser.parse_args()
    INTERRUPTS.install()  # SIGTERM / SIGINT: one line and status 143 / 130, after saving where a loop can
    try:
        return main(args)
    except FlagError as err:  # a flag refused before any work: as the parser refuses a value, status 2
        parser.error(str(err))
    except InputError as err:  # bad input, named where it was found; any other exception is a bug: its traceback
        raise SystemExit(f'error: {err}') from None
    except OSError as err:
        if err.errno not in USER_FIXABLE_ERRNOS:
            raise
        raise SystemExit(f'error: {err.filename or "an output"}: {err.strerror}') from None
    finally:
        INTERRUPTS.uninstall()
        release_folders()
        close_distributed()
