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
from utils.engine.records import Record
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


@dataclass
class TrainingJob:
    """What a trainer supplies.

    record: what the run is made from (its folder is the output folder). final_path: the final weights;
    snapshot(iteration) -> the path of a periodic snapshot; snapshot_pattern: a regex matching those names
    (iteration = group 1). iterations: the updates of the whole run.
    dataset() -> the training set (with problems(), drop(), num_images(); read by training_loader);
    data_what(dataset): how the data check names its samples. drop_last(samples, batch): whether an epoch's short
    last batch is left out; min_batch: the fewest samples a process may take per step.
    build() -> (the network, prepared for its precision and in train mode; its optimiser; its step), called
    after seeding: step(model, batches) -> the update's loss, detached: draws its batch(es) from the BatchStream
    and runs forward and (scaled) backward; model is the network, wrapped in DistributedDataParallel under
    torchrun. set_lr(optimizer, iteration): before each update. describe(dataset): the line printed before the
    loop; summary(dataset): what the completion record says of the data."""
    record: Record
    final_path: str
    snapshot: Callable[[int], str]
    snapshot_pattern: str
    iterations: int
    dataset: Callable[[], Dataset]
    data_what: Callable[[Dataset], str]
    drop_last: Callable[[int, int], bool]
    build: Callable[[], tuple[nn.Module, torch.optim.Optimizer, Callable[[nn.Module, BatchStream], torch.Tensor]]]
    set_lr: Callable[[torch.optim.Optimizer, int], None]
    describe: Callable[[Dataset], str]
    summary: Callable[[Dataset], dict]
    min_batch: int = 1


def training_done(record, final_path):
    """Whether the training of `record` already finished with the same settings and inputs (run_rounds.py asks)."""
    return record.is_done(lambda summary: os.path.exists(final_path))


def fit(job, args, ctx, precision):
    """Run `job` to its last iteration (or skip it when it is done); returns the final weights' path. args: the
    training flags (utils.engine.training.add_training_args, --batch_size, --workers, --seed, --deterministic,
    --num_print_log, --num_save_model)."""
    if training_done(job.record, job.final_path) and not (args.overwrite and not args.resume):
        ctx.print(f'{job.final_path}: already trained for {job.iterations} iterations with these settings and inputs')
        return job.final_path
    # The data are checked before anything is written.
    dataset = job.dataset()
    drop_bad_samples(ctx, dataset, job.data_what(dataset), args.skip_bad)
    # Made before the run begins, so that a batch size the data cannot fill is refused before anything is written.
    loader = training_loader(dataset, args.batch_size, ctx, args.workers, args.seed, job.drop_last, job.min_batch)
    folder = job.record.folder
    last_path = layout.last_checkpoint(folder)
    run_files = [last_path, job.final_path]
    begin_training_run(ctx, job.record, args, run_files, clear=lambda: remove_files(
        run_files + [path for _, path in snapshot_files(folder, job.snapshot_pattern)] + [job.record.path]))
    seed_everything(args.seed + ctx.rank, args.deterministic)
    model, optimizer, step = job.build()
    start, resume_state = resume_training(last_path, model, optimizer) if args.resume else (0, None)
    ctx.print(job.describe(dataset))
    trained = distributed_model(model, ctx)
    outputs = RunOutputs(ctx, job.record, args, start, job.iterations, job.final_path, job.snapshot,
                         job.snapshot_pattern, loader, precision.scaler, resume_state)
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
    return outputs.finish(done, model, job.summary(dataset))
