"""What both training scripts (trainLPG.py, main.py) share: the loader of each process's share of a global
batch, DistributedDataParallel, the poly learning rate, the loss log."""
import csv
import os
import re
import time

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from datasets.io import atomic_open, claim_folder, remove_files
from datasets.validate import report_problems
from utils import layout
from utils.checkpoint import non_finite_keys, save_checkpoint, save_training_state
from utils.interrupts import INTERRUPTS, stop_for
from utils.sample_stream import BatchStream, KeyedSamples, SampleStream, random_states, restore_stream
from utils.visualize import write_curve


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
    parser.add_argument('--max_nan_skips', type=int, default=10)
    parser.add_argument('--skip_bad', action='store_true',
                        help='leave out the samples the up-front data check finds bad, instead of stopping')
    parser.add_argument('--keep_checkpoints', type=int, default=0,
                        help='keep only the last K periodic snapshots (default 0: keep all)')
    parser.add_argument('--tensorboard', action='store_true',
                        help='also write the loss and lr as TensorBoard scalars (needs the tensorboard package)')


def per_process_batch(global_batch, ctx):
    """--batch_size is the global batch: each of the processes takes an equal share."""
    if global_batch % ctx.world_size:
        raise SystemExit(f'--batch_size {global_batch} is the global batch and must be a multiple of the '
                         f'{ctx.world_size} processes')
    return global_batch // ctx.world_size


def training_loader(dataset, global_batch, ctx, workers, seed, drop_last, min_batch=1):
    """Endless batches of this process's share of each global batch, in the run's sample stream
    (utils/sample_stream.py: the order and the augmentation depend on the seed and the batches drawn only).
    drop_last(samples, batch) says whether an epoch's short last batch is left out; samples counts this
    process's share. min_batch: the fewest samples a process may take per step (2 for a network whose batch norm
    trains). Refuses, before any work, a --batch_size below it and data that would yield no batch (an
    iteration-based loop would wait for one forever)."""
    batch = per_process_batch(global_batch, ctx)
    share = f' on each of {ctx.world_size} processes' if ctx.distributed else ''
    if batch < min_batch:
        raise SystemExit(f'--batch_size {global_batch} gives {batch} sample per step{share}: this network trains '
                         f'batch norm, which needs at least {min_batch} samples per process')
    stream = SampleStream(len(dataset), global_batch, ctx.rank, ctx.world_size, seed, drop_last)
    if stream.batches_per_epoch == 0:
        samples = len(dataset) // ctx.world_size
        raise SystemExit(f'{samples} training sample(s){share} with --batch_size {global_batch}: the loader yields '
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
        raise SystemExit('--sync_bn synchronises batch norm across GPUs: it needs --cuda (PyTorch\'s SyncBatchNorm '
                         'has no CPU implementation)')
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def distributed_model(model, ctx):
    """The model wrapped in DistributedDataParallel when there are several processes."""
    if not ctx.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == 'cuda' else None)


def unwrap(model):
    """The network inside a DistributedDataParallel wrapper (what checkpoints store)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def poly_lr(base_lr, iteration, max_iterations, power=0.9, warmup=0):
    """The release's poly schedule, base_lr x (1 - it/max)^power; with `warmup` > 0 (not in the release) the
    first `warmup` iterations also ramp linearly up to it: x (it + 1) / warmup."""
    ramp = min(1.0, (iteration + 1) / warmup) if warmup > 0 else 1.0
    return base_lr * ramp * (1.0 - iteration / max_iterations) ** power


def set_poly_lr(optimizer, iteration, max_iterations, power=0.9, warmup=0):
    """Set every param group's lr to its `initial_lr` x (1 - it/max)^power (and the warm-up ramp)."""
    for group in optimizer.param_groups:
        group['lr'] = poly_lr(group['initial_lr'], iteration, max_iterations, power, warmup)


class LossLog:
    """Prints the mean loss of the last `every` iterations (and at the last one) over all processes, with lr and
    elapsed time, on rank 0; there it also appends the row to <folder>/loss_log.csv (cut back to the resumed
    iteration on a resume), and with tensorboard writes the scalars too. draw_curve() redraws
    <folder>/loss_curve.png from the whole log (RunOutputs calls it with each checkpoint, not with each print:
    late in a long run a redraw reads thousands of rows).

    Losses are summed on the device and read back only when printed, so logging does not stall a GPU."""

    def __init__(self, total, every, ctx, folder=None, start=0, tensorboard=False):
        self.total, self.every, self.ctx = total, every, ctx
        self.running, self.count, self.tic = 0.0, 0, time.time()
        self.csv = self.writer = None
        if folder is not None and ctx.is_main:
            self.csv, self.curve = layout.loss_log(folder), layout.loss_curve(folder)
            self.title = os.path.basename(os.path.normpath(folder))
            rows = []
            if start and os.path.exists(self.csv):
                with open(self.csv) as handle:
                    rows = [row for row in csv.DictReader(handle) if int(row['iteration']) <= start]
            with atomic_open(self.csv, 'w') as handle:
                table = csv.DictWriter(handle, LOG_FIELDS)
                table.writeheader()
                table.writerows(rows)
            if tensorboard:
                self.writer = tensorboard_writer(os.path.join(folder, 'tensorboard'))

    def update(self, done, loss, optimizer):
        self.running = self.running + loss.detach().float()
        self.count += 1
        if done % self.every == 0 or done == self.total:
            mean = self.ctx.all_reduce_sum(torch.as_tensor(self.running).reshape(1).clone())
            mean = float(mean) / (self.count * self.ctx.world_size)
            lr, seconds = optimizer.param_groups[0]['lr'], time.time() - self.tic
            self.ctx.print(f'iter {done}/{self.total} loss {mean:.4f} lr {lr:.2e} {seconds:.1f}s')
            if self.csv is not None:
                with open(self.csv, 'a', newline='') as handle:
                    csv.DictWriter(handle, LOG_FIELDS).writerow(
                        {'iteration': done, 'loss': f'{mean:.6g}', 'lr': f'{lr:.6g}', 'seconds': f'{seconds:.1f}'})
            if self.writer is not None:
                self.writer.add_scalar('loss', mean, done)
                self.writer.add_scalar('lr', lr, done)
                self.writer.flush()
            self.running, self.count = 0.0, 0

    def draw_curve(self):
        if self.csv is not None:
            write_curve(self.csv, self.curve, self.title)


LOG_FIELDS = ('iteration', 'loss', 'lr', 'seconds')


def tensorboard_writer(folder):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise SystemExit('--tensorboard needs the tensorboard package: pip install tensorboard') from None
    return SummaryWriter(folder)


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
            raise SystemExit(f'{record.folder} already holds a training run ({os.path.basename(existing[0])}): pass '
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
        problems = dataset.problems(progress=True)
        report_problems(problems, dataset.num_images(), what, skip_bad)
        return list(problems)
    bad = ctx.on_main(check)
    if bad:
        dataset.drop(bad)


class NonFiniteGuard:
    """Stops a run at a non-finite loss (naming the iteration), or skips the batch up to a limit; all
    processes agree, so they stop or skip together."""

    def __init__(self, ctx, policy, limit, last_checkpoint):
        self.ctx, self.policy, self.limit, self.last_checkpoint = ctx, policy, limit, last_checkpoint
        self.skipped = 0

    def loss_is_finite(self, loss, iteration):
        bad = self.ctx.all_reduce_sum((~torch.isfinite(loss.detach().float())).float().reshape(1))
        if not bad.item():
            return True
        where = 'its checkpoint stays untouched' if os.path.exists(self.last_checkpoint) else 'nothing was saved'
        if self.policy == 'stop' or self.skipped >= self.limit:
            limit = f' after skipping {self.skipped} batches (--max_nan_skips {self.limit})' if self.skipped else ''
            raise SystemExit(f'iteration {iteration}: the loss is not finite ({float(loss):g}){limit}; stopped. '
                             f'The last good checkpoint is {self.last_checkpoint} ({where}); lower --lr, or pass '
                             '--on_nan skip to skip such batches')
        self.skipped += 1
        self.ctx.print(f'iteration {iteration}: non-finite loss, batch skipped ({self.skipped}/{self.limit})')
        return False

    def check_weights(self, model, iteration):
        """Refuse to save weights that are no longer finite."""
        bad = non_finite_keys(model.state_dict())
        if bad:
            raise SystemExit(f'iteration {iteration}: the weights are no longer finite ({bad[0]} and {len(bad) - 1} '
                             f'more); nothing was saved, the last good checkpoint is {self.last_checkpoint}')


def save_snapshot(path, model, keep, pattern):
    """Save a periodic snapshot (plain state dict) and delete all but the last `keep` (0: keep all).
    pattern: a regex matching the snapshot names of this run, with the iteration as group 1."""
    save_checkpoint(path, **model.state_dict())
    if keep > 0:
        remove_files([old for _, old in snapshot_files(os.path.dirname(path), pattern)[:-keep]])


class RunOutputs:
    """What a training run writes in its record's folder, on rank 0 and only while its weights are finite: the
    loss log (every --num_print_log iterations), the training state (checkpoint_last.pth), a snapshot (the last
    --keep_checkpoints, or all) and the loss curve every --num_save_model iterations, then the final weights and
    the completion record.

    log: the run's LossLog, which the training loop feeds each update's loss; guard: its NonFiniteGuard
    (--on_nan, --max_nan_skips), which the loop asks about each loss; batches: its BatchStream over `loader`
    (training_loader), from which the loop draws. start: the iterations already done and resume_state what the
    checkpoint of a resumed run holds besides model and optimizer (None for a new run); total: the run's
    iterations; snapshot(iteration) -> path; pattern matches the snapshot names (iteration = group 1); scaler: the
    run's GradScaler.

    The training state holds where the sample stream stands, every process's random state, the scaler, the
    batches skipped for a non-finite loss and the loss log's open window, so that a resumed run continues the
    interrupted one exactly (on the same machine and thread count, with --deterministic on a GPU)."""

    def __init__(self, ctx, record, args, start, total, final_path, snapshot, pattern, loader, scaler,
                 resume_state=None):
        self.ctx, self.record, self.args, self.scaler = ctx, record, args, scaler
        self.last_path = layout.last_checkpoint(record.folder)
        self.log = LossLog(total, args.num_print_log, ctx, record.folder, start, args.tensorboard)
        self.guard = NonFiniteGuard(ctx, args.on_nan, args.max_nan_skips, self.last_path)
        self.final_path, self.snapshot, self.pattern = final_path, snapshot, pattern
        self.every, self.total, self.keep = args.num_save_model, total, args.keep_checkpoints
        drawn = restore_stream(resume_state, ctx)
        if resume_state is not None:
            if resume_state['scaler'] and scaler.is_enabled():
                scaler.load_state_dict(resume_state['scaler'])
            self.guard.skipped = resume_state['nan_skips']
            self.log.running, self.log.count = resume_state['log']
        elif start:
            drawn = start * getattr(args, 'iter_size', 1)
            ctx.print(f'{self.last_path} predates exact resume: the run goes on after the batches its {start} '
                      'iterations used, with other random draws than it would have made')
        self.batches = BatchStream(loader, drawn or 0)
        INTERRUPTS.enter()  # from here SIGTERM / SIGINT end the run after its current update (save)

    def resume_state(self):
        """What a resumed run needs besides model and optimizer (gathered from every process)."""
        return {'batches_drawn': self.batches.drawn, 'random_states': self.ctx.all_gather_objects(random_states()),
                'scaler': self.scaler.state_dict(), 'nan_skips': self.guard.skipped,
                'log': [float(self.log.running), self.log.count]}

    def save(self, done, model, optimizer):
        """After an update: the training state (and a snapshot) at every `every` iterations and at the end; after
        a SIGTERM or SIGINT, the training state at this iteration, then the script exits (143 / 130)."""
        # Every process must stop after the same update. Alone, a process reads its flag after each update; with
        # several, they agree on it (one small collective) only at the loss log's cadence, not on the hot path.
        agree_now = not self.ctx.distributed or done % self.log.every == 0
        interrupted = INTERRUPTS.pending(self.ctx) if agree_now else None
        if done % self.every and done != self.total and not interrupted:
            return
        self.guard.check_weights(model, done)
        resume_state = self.resume_state()  # a collective: every process takes part
        if self.ctx.is_main:
            save_training_state(self.last_path, model, optimizer, done, self.args, resume_state)
            if done % self.every == 0:
                save_snapshot(self.snapshot(done), model, self.keep, self.pattern)
            self.log.draw_curve()
        if interrupted:
            self.ctx.barrier()  # the state is saved before any process exits
            stop_for(interrupted, lambda name: f'interrupted by {name} at iteration {done}; checkpoint saved '
                     f'({self.last_path}); rerun with --resume to continue', self.ctx)

    def finish(self, done, model, summary):
        """The final weights (plain state dict, like the released files), then the record; every process waits."""
        INTERRUPTS.leave()
        self.guard.check_weights(model, done)
        if self.ctx.is_main:
            save_checkpoint(self.final_path, **model.state_dict())
            self.log.draw_curve()
            self.record.write('done', dict(summary, iterations=done, final=self.final_path))
            print(f'saved {self.final_path}')
        self.ctx.barrier()
        return self.final_path
