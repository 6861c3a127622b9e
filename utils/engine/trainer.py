"""The training loop both trainers run, once: main.py (a segmentation backbone) and trainLPG.py (a generator)
each supply a TrainingJob, its data, network, optimiser and step, and `fit` does the rest: the completion
check, the up-front data check, the loader, the run's folder, seeding, resume, DistributedDataParallel, the
poly learning rate's cadence, the NaN guard, the loss log, the checkpoints and the completion record."""
import os
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from utils.engine import layout
from utils.engine.checkpoint import resume_training
from utils.engine.records import Completion
from utils.engine.run_outputs import RunOutputs
from utils.engine.runtime import seed_everything
from utils.engine.sample_stream import BatchStream
from utils.engine.training import (
    begin_training_run,
    distributed_model,
    drop_bad_samples,
    snapshot_files,
    training_loader,
)

from .files import remove_files


@dataclass(frozen=True, kw_only=True)
class TrainingJob:
    """What a trainer supplies: plain values for what the run is, and three functions for what it does.

    completion: the run's record (its folder is the output folder) and whether it finished (training_completion).
    final_path: the final weights; snapshot(iteration) -> the path of a periodic snapshot, whose names
    snapshot_pattern matches (iteration = group 1). iterations: the updates of the whole run; batches_per_update:
    the batches a step draws (main.py's --iter_size). describe: the line printed before the loop, `{count}`
    standing for the number of samples; counted: what the completion record calls them ('images', 'samples').
    drop_short_batch: whether an epoch's short last batch is left out (otherwise it is kept unless it holds fewer
    than min_batch samples, the fewest a process may take per step).

    dataset() -> the training set: problems(), drop(), num_images() for the data check, which names its images
    by the dataset's `what`. build() -> (the network, prepared for its precision and in train mode; its optimiser;
    its step), called after seeding: step(model, batches) -> the update's loss, detached: the trainer's loss
    function (main.train_step, trainLPG.train_step), which draws its batch(es) from the BatchStream and runs
    forward and (scaled) backward; model is the network, wrapped in DistributedDataParallel under torchrun.
    set_lr(optimizer, iteration): before each update."""
    completion: Completion
    final_path: str
    snapshot: Callable[[int], str]
    snapshot_pattern: str
    iterations: int
    describe: str
    counted: str
    drop_short_batch: bool
    min_batch: int = 1
    batches_per_update: int = 1
    dataset: Callable[[], Dataset]
    build: Callable[[], tuple[nn.Module, torch.optim.Optimizer, Callable[[nn.Module, BatchStream], torch.Tensor]]]
    set_lr: Callable[[torch.optim.Optimizer, int], None]

    def drop_last(self, samples, batch):
        """Whether an epoch's short last batch is left out (samples: this process's share of the epoch)."""
        return samples >= batch if self.drop_short_batch else 0 < samples % batch < self.min_batch


def training_completion(record, final_path):
    """A training's Completion: its record says done and its final weights are still there."""
    return Completion(record, lambda summary: os.path.exists(final_path))


def fit(job, args, ctx, precision):
    """Run `job` to its last iteration (or skip it when it is done); returns the final weights' path. args: the
    training flags (utils.engine.training.add_training_args, --batch_size, --workers, --seed, --deterministic,
    --num_print_log, --num_save_model)."""
    record = job.completion.record
    if job.completion.done() and not (args.overwrite and not args.resume):
        ctx.print(f'{job.final_path}: already trained for {job.iterations} iterations with these settings and inputs')
        return job.final_path
    # The data are checked before anything is written.
    dataset = job.dataset()
    drop_bad_samples(ctx, dataset, f'{dataset.what} images', args.skip_bad)
    # Made before the run begins, so that a batch size the data cannot fill is refused before anything is written.
    loader = training_loader(dataset, args.batch_size, ctx, args.workers, args.seed, job.drop_last, job.min_batch)
    folder = record.folder
    last_path = layout.last_checkpoint(folder)
    run_files = [last_path, job.final_path]
    begin_training_run(ctx, record, args, run_files, clear=lambda: remove_files(
        run_files + [path for _, path in snapshot_files(folder, job.snapshot_pattern)] + [record.path]))
    seed_everything(args.seed + ctx.rank, args.deterministic)
    model, optimizer, step = job.build()
    start, resume_state = resume_training(last_path, model, optimizer) if args.resume else (0, None)
    ctx.print(job.describe.format(count=len(dataset)))
    trained = distributed_model(model, ctx)
    outputs = RunOutputs(ctx, record, args, start, job.iterations, job.final_path, job.snapshot,
                         job.snapshot_pattern, loader, precision.scaler, resume_state, job.batches_per_update)
    done = start
    while done < job.iterations:
        job.set_lr(optimizer, done)
        optimizer.zero_grad(set_to_none=True)
        loss = step(trained, outputs.batches)
        if not outputs.guard.loss_is_finite(loss, done + 1):
            continue
        precision.scaler.step(optimizer)
        precision.scaler.update()
        done += 1
        outputs.log.update(done, loss, optimizer)
        outputs.save(done, model, optimizer)
    return outputs.finish(done, model, {job.counted: len(dataset)})
