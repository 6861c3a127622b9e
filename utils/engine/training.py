"""The pieces of the training loop (utils/engine/trainer.py) that both trainers share: the training flags, the loader of
each process's share of a global batch, DistributedDataParallel, the poly learning rate, the start of a run
(resume or overwrite), the up-front data check. What a run writes while it trains: utils/engine/run_outputs.py."""
import os
import re

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from utils.engine.flags import count
from utils.engine.sample_stream import KeyedSamples, SampleStream

from .errors import InputError, report_problems
from .files import claim_folder


def add_training_args(parser):
    """--sync_bn, and the flags that keep a long run honest: resume or overwrite, NaN handling, bad samples,
    snapshots."""
    parser.add_argument('--sync_bn', action='store_true',
                        help='with several GPUs, batch-norm statistics over the global batch (SyncBatchNorm) '
                        'instead of each GPU\'s share, as DataParallel in the release')
    parser.add_argument('--resume', action='store_true', help='continue the run whose checkpoint_last.pth is in the '
                        'output folder (refused if it was made from other settings or inputs)')
    parser.add_argument('--overwrite', action='store_true',
                        help='start again: delete the run already in the output folder')
    parser.add_argument('--on_nan', choices=['stop', 'skip'], default='stop',
                        help='a non-finite loss stops the run (default), or its batch is skipped, --max_nan_skips '
                        'times at most; non-finite weights are never saved')
    parser.add_argument('--max_nan_skips', type=count(0), default=10)
    parser.add_argument('--skip_bad', action='store_true',
                        help='leave out the samples the up-front data check finds bad, instead of stopping')
    parser.add_argument('--keep_checkpoints', type=count(0, meaning='0 keeps all'), default=0,
                        help='keep only the last K periodic snapshots (default 0)')
    parser.add_argument('--tensorboard', action='store_true',
                        help='also write the loss and lr as TensorBoard scalars (needs the tensorboard package)')


def per_process_batch(global_batch, ctx):
    """--batch_size is the global batch: each of the processes takes an equal share."""
    if global_batch % ctx.world_size:
        raise InputError(f'--batch_size {global_batch} is the global batch and must be a multiple of the '
                         f'{ctx.world_size} processes')
    return global_batch // ctx.world_size


def training_loader(dataset, global_batch, ctx, workers, seed, drop_last, min_batch=1):
    """Endless batches of this process's share of each global batch, in the run's sample stream
    (utils/engine/sample_stream.py: the order and the augmentation depend on the seed and the batches drawn only).
    drop_last(samples, batch) says whether an epoch's short last batch is left out; samples counts this
    process's share. min_batch: the fewest samples a process may take per step (2 for a network whose batch norm
    trains). Refuses, before any work, a --batch_size below it and data that would yield no batch (an
    iteration-based loop would wait for one forever)."""
    batch = per_process_batch(global_batch, ctx)
    share = f' on each of {ctx.world_size} processes' if ctx.distributed else ''
    if batch < min_batch:
        raise InputError(f'--batch_size {global_batch} gives {batch} sample per step{share}: this network trains '
                         f'batch norm, which needs at least {min_batch} samples per process')
    stream = SampleStream(len(dataset), global_batch, ctx.rank, ctx.world_size, seed, drop_last)
    if stream.batches_per_epoch == 0:
        samples = len(dataset) // ctx.world_size
        raise InputError(f'{samples} training sample(s){share} with --batch_size {global_batch}: the loader yields '
                         f'no batch (a batch needs at least {max(min_batch, 2)} samples here); add samples or lower '
                         '--batch_size')
    # The loader's own generator seeds its workers, so that starting them draws nothing from torch's global
    # random state (which dropout reads, and a checkpoint restores).
    return DataLoader(KeyedSamples(dataset), batch_sampler=stream, num_workers=workers,
                      pin_memory=ctx.device.type == 'cuda', generator=torch.Generator().manual_seed(seed))


def convert_sync_bn(model, ctx, enabled):
    """SyncBatchNorm across the processes (GPUs only, as in PyTorch); call before building the optimizer."""
    if not enabled or not ctx.distributed:
        return model
    if ctx.device.type != 'cuda':
        raise InputError('--sync_bn synchronises batch norm across GPUs: it needs --cuda (PyTorch\'s SyncBatchNorm '
                         'has no CPU implementation)')
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def distributed_model(model, ctx):
    """The model wrapped in DistributedDataParallel when there are several processes."""
    if not ctx.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == 'cuda' else None)


def poly_lr(base_lr, iteration, max_iterations, power=0.9, warmup=0):
    """The release's poly schedule, base_lr x (1 - it/max)^power; with `warmup` > 0 (not in the release) the
    first `warmup` iterations also ramp linearly up to it: x (it + 1) / warmup."""
    ramp = min(1.0, (iteration + 1) / warmup) if warmup > 0 else 1.0
    return base_lr * ramp * (1.0 - iteration / max_iterations) ** power


def set_poly_lr(optimizer, iteration, max_iterations, power=0.9, warmup=0):
    """Set every param group's lr to its `initial_lr` x (1 - it/max)^power (and the warm-up ramp)."""
    for group in optimizer.param_groups:
        group['lr'] = poly_lr(group['initial_lr'], iteration, max_iterations, power, warmup)


# The flags above and the device flags: how a run executes, not what it computes (each trainer's RUNTIME_FLAGS
# holds them).
TRAINING_RUNTIME_FLAGS = {'resume', 'overwrite', 'on_nan', 'max_nan_skips', 'skip_bad', 'keep_checkpoints', 'workers',
                 'cuda', 'amp', 'sync_bn', 'num_print_log', 'num_save_model', 'tensorboard'}


def begin_training_run(ctx, record, args, run_files, clear):
    """Honest resume. A folder that already holds a run (any of run_files) is only continued with --resume
    (and only if it was made from the same settings and inputs) or replaced with --overwrite; with both, the run
    is continued if it fits and replaced if not (what run_rounds.py --overwrite asks for). Returns the stored
    state of the run being continued, or 'new'. Decided on rank 0, seen by every process."""
    def decide():
        # Claimed first: a live run in the folder is refused before anything of it is touched.
        removed = claim_folder(record.folder)
        existing = [path for path in run_files if os.path.exists(path)]
        if existing and not args.resume and not args.overwrite:
            raise InputError(f'{record.folder} already holds a training run ({os.path.basename(existing[0])}): pass '
                             '--resume to continue it, or --overwrite to start again')
        if args.overwrite and not args.resume:  # start again, whatever the folder holds
            clear()
            existing = []
        if removed:
            print(f'removed {removed} temporary files left by an interrupted save in {record.folder}')
        return record.begin(bool(existing), args.overwrite, clear, 'a training run')
    state = ctx.on_main(decide)
    ctx.barrier()
    return state


def snapshot_files(folder, pattern):
    """(iteration, path) of the periodic snapshots in folder whose names match pattern (iteration = group 1)."""
    if not os.path.isdir(folder):
        return []
    return sorted((int(match.group(1)), os.path.join(folder, name)) for name in os.listdir(folder)
                  for match in [re.fullmatch(pattern, name)] if match)


def drop_bad_samples(ctx, dataset, what, skip_bad):
    """The up-front data check, on rank 0: stops with a report of every bad sample, or with skip_bad leaves them
    out (on every process)."""
    def check():
        tagged = []
        problems = dataset.problems(progress=True, tagged=tagged)
        report_problems(problems, dataset.num_images(), what, skip_bad)
        if tagged:
            print(f'{len(tagged)} of the {dataset.num_images()} {what} carry an EXIF orientation tag: each is read in '
                  'the pixel frame of its label (the stored one, or turned where only the turned size matches it)',
                  flush=True)
        return list(problems)
    bad = ctx.on_main(check)
    if bad:
        dataset.drop(bad)
