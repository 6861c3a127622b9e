"""The order and the randomness of a training run's samples, as functions of the seed and of the place in the run
alone, so that a resumed run draws exactly what the interrupted run would have drawn next.

Epoch e shuffles the n samples with torch.randperm seeded by seed + e. Global batch k of the epoch is positions
k*B .. (k+1)*B - 1 of that order (B = --batch_size, the global batch), and process r of W takes the r-th of its
W equal shares. The augmentation of the sample at position p of epoch e draws from a numpy Generator seeded by
(seed, e*n + p), in whichever process or loader worker reads it. So what a run trains on depends on the seed and
on the number of batches drawn only: not on --workers, not on the process count, and not on where the run was
interrupted. A checkpoint stores that number (resume_state) with every process's global random state (dropout
draws from torch's), and --resume restores both.
"""
import random
import warnings
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class SampleKey(NamedTuple):
    """A sample of the stream: its index in the dataset, and its place in the run (epoch * n + position), which
    seeds its augmentation."""
    index: int
    draw: int


class SampleStream(Sampler):
    """Endless batches of SampleKeys of this process's share of each global batch (a DataLoader batch_sampler).

    drop_last(samples, batch) says whether an epoch's short last batch is left out (samples: this process's
    share of the epoch, batch: its share of a batch), as DataLoader's drop_last would. start: the global batches
    already drawn (set it before iterating to continue a run)."""

    def __init__(self, num_samples, global_batch, rank, world_size, seed, drop_last):
        self.num_samples, self.global_batch, self.seed = int(num_samples), int(global_batch), int(seed)
        self.rank, self.share = rank, global_batch // world_size
        self.full, rest = divmod(self.num_samples, self.global_batch)
        short = rest // world_size  # each process's share of the short last batch
        keep_short = short > 0 and not drop_last(self.full * self.share + short, self.share)
        self.short = short if keep_short else 0
        self.batches_per_epoch = self.full + keep_short
        self.start = 0

    def epoch_order(self, epoch):
        return torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()

    def __iter__(self):
        epoch, batch = divmod(self.start, self.batches_per_epoch)
        while True:
            order = self.epoch_order(epoch)
            for batch in range(batch, self.batches_per_epoch):
                size = self.share if batch < self.full else self.short
                first = batch * self.global_batch + self.rank * size
                yield [SampleKey(order[p], epoch * self.num_samples + p) for p in range(first, first + size)]
            epoch, batch = epoch + 1, 0


class KeyedSamples(Dataset):
    """A training dataset read by SampleKey: each sample's augmentation (the dataset's `augment`, a
    ScalePadCropFlip) is seeded by the key's place in the run before the sample is read."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        augment = getattr(self.dataset, 'augment', None)
        if augment is not None:
            augment.start_sample(key.draw)
        return self.dataset[key.index]


class BatchStream:
    """next() hands out the loader's batches and counts them (`drawn`: global batches drawn so far, the same on
    every process), so that a checkpoint can say where the stream stands."""

    def __init__(self, loader, drawn=0):
        loader.batch_sampler.start = drawn
        self.loader, self.drawn, self._batches = loader, drawn, None

    def __next__(self):
        if self._batches is None:
            self._batches = iter(self.loader)  # the endless SampleStream: one iterator for the whole run
        batch = next(self._batches)
        self.drawn += 1
        return batch


def random_states():
    """This process's global random states (Python, NumPy, torch, and CUDA when present), as plain containers
    and tensors that a weights_only checkpoint holds."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {'python': [version, list(internal), gauss_next],
            'numpy': [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
            'torch': torch.get_rng_state(),
            'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_random_states(states):
    """Set this process's global random states to those random_states() returned."""
    version, internal, gauss_next = states['python']
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, position, has_gauss, gauss = states['numpy']
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(states['torch'])
    if states['cuda'] and torch.cuda.is_available() and len(states['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states['cuda'])


def restore_stream(resume_state, ctx):
    """The global batches drawn by the run being continued, with this process's random states restored from
    resume_state (what RunOutputs saves). A checkpoint of another process count continues the same data stream
    but not the processes' own random draws (dropout), with a warning; one without resume_state (written before
    exact resume existed) continues after the batches its iterations used, with a warning."""
    if resume_state is None:
        return None
    states = resume_state['random_states']
    if len(states) == ctx.world_size:
        restore_random_states(states[ctx.rank])
    else:
        warnings.warn(f'the checkpoint was written by {len(states)} process(es), this run has {ctx.world_size}: the '
                      'data continue exactly, the processes\' random draws (dropout) do not')
    return resume_state['batches_drawn']
