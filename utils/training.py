"""What both training scripts (trainLPG.py, main.py) share: the loader of each process's share of a global
batch, DistributedDataParallel, the poly learning rate, the loss log."""
import time

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler


def add_training_args(parser):
    parser.add_argument('--sync_bn', action='store_true',
                        help='with several GPUs, batch-norm statistics over the global batch (SyncBatchNorm) '
                        'instead of each GPU\'s share, as DataParallel in the release')


def per_process_batch(global_batch, ctx):
    """--batch_size is the global batch: each of the processes takes an equal share."""
    if global_batch % ctx.world_size:
        raise SystemExit(f'--batch_size {global_batch} is the global batch and must be a multiple of the '
                         f'{ctx.world_size} processes')
    return global_batch // ctx.world_size


def training_loader(dataset, global_batch, ctx, workers, seed, drop_last):
    """Shuffled batches of this process's share of the data. drop_last(samples, batch) says whether a
    short last batch is left out; samples counts this process's share."""
    batch = per_process_batch(global_batch, ctx)
    sampler = DistributedSampler(dataset, ctx.world_size, ctx.rank, shuffle=True, seed=seed) if ctx.distributed \
        else None
    samples = len(sampler) if sampler is not None else len(dataset)
    return DataLoader(dataset, batch_size=batch, shuffle=sampler is None, sampler=sampler, num_workers=workers,
                      pin_memory=ctx.device.type == 'cuda', drop_last=drop_last(samples, batch),
                      persistent_workers=workers > 0)


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


def poly_lr(base_lr, iteration, max_iterations, power=0.9):
    return base_lr * (1.0 - iteration / max_iterations) ** power


def set_poly_lr(optimizer, iteration, max_iterations, power=0.9):
    """Set every param group's lr to its `initial_lr` x (1 - it/max)^power."""
    for group in optimizer.param_groups:
        group['lr'] = poly_lr(group['initial_lr'], iteration, max_iterations, power)


def infinite_batches(loader):
    """Cycle through a DataLoader forever (iteration-based training; a short last batch is used as is)."""
    epoch = 0
    while True:
        sampler = getattr(loader, 'sampler', None)
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(epoch)
        for batch in loader:
            yield batch
        epoch += 1


class LossLog:
    """Prints the mean loss of the last `every` iterations (and at the last one) over all processes, with lr and
    elapsed time, on rank 0.

    Losses are summed on the device and read back only when printed, so logging does not stall a GPU."""

    def __init__(self, total, every, ctx):
        self.total, self.every, self.ctx = total, every, ctx
        self.running, self.count, self.tic = 0.0, 0, time.time()

    def update(self, done, loss, optimizer):
        self.running = self.running + loss.detach().float()
        self.count += 1
        if done % self.every == 0 or done == self.total:
            mean = self.ctx.all_reduce_sum(torch.as_tensor(self.running).reshape(1).clone())
            mean = float(mean) / (self.count * self.ctx.world_size)
            self.ctx.print(f'iter {done}/{self.total} loss {mean:.4f} '
                           f'lr {optimizer.param_groups[0]["lr"]:.2e} {time.time() - self.tic:.1f}s')
            self.running, self.count = 0.0, 0
