"""What a training run writes in its folder while it trains (RunOutputs): the loss log and curve, the training
state that --resume continues from, the periodic snapshots, the final weights and the completion record; and the
guard that stops (or skips) at a non-finite loss and never saves non-finite weights."""
import csv
import os
import time

import torch

from utils.engine import layout
from utils.engine.checkpoint import non_finite_keys, save_checkpoint, save_training_state
from utils.engine.interrupts import INTERRUPTS, stop_for
from utils.engine.loss_curve import write_curve
from utils.engine.sample_stream import BatchStream, random_states, restore_stream
from utils.engine.training import snapshot_files

from .files import atomic_open, remove_files


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
    run's GradScaler; batches_per_update: the batches each update draws (for a checkpoint that predates exact
    resume).

    The training state holds where the sample stream stands, every process's random state, the scaler, the
    batches skipped for a non-finite loss and the loss log's open window, so that a resumed run continues the
    interrupted one exactly (on the same machine and thread count, with --deterministic on a GPU)."""

    def __init__(self, ctx, record, args, start, total, final_path, snapshot, pattern, loader, scaler,
                 resume_state=None, batches_per_update=1):
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
            drawn = start * batches_per_update
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
