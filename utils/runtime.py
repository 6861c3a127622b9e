"""Process set-up shared by the scripts: flag parsing helpers, device choice, seeding, poly learning rate,
the iteration loop's helpers and the scripts' error handling."""
import argparse
import random
import time

import numpy as np
import torch


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


def add_device_args(parser, workers=None, seed=False):
    """`--cuda [true|false]` (default: use a GPU when there is one); `--workers N` when the script loads data
    in worker processes (default `workers`), `--seed N` when it draws random numbers."""
    parser.add_argument('--cuda', type=str2bool, nargs='?', const=True, default=None,
                        help='run on the GPU (true) or the CPU (false); default: the GPU when one is available')
    if workers is not None:
        parser.add_argument('--workers', type=int, default=workers, help='data-loading worker processes')
    if seed:
        parser.add_argument('--seed', type=int, default=0, help='random seed')


def select_device(cuda=None):
    """The torch device the `--cuda` flag asks for; a clear error when a GPU is asked for but absent."""
    if cuda is None:
        cuda = torch.cuda.is_available()
    if cuda and not torch.cuda.is_available():
        raise SystemExit('--cuda true was given but PyTorch sees no CUDA device; pass --cuda false to run on the CPU')
    if cuda:
        torch.backends.cudnn.benchmark = True
        return torch.device('cuda')
    return torch.device('cpu')


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


def run_script(main, parser):
    """Parse the flags and run `main`; bad input (a missing or malformed file) ends with its message,
    not a traceback."""
    args = parser.parse_args()
    try:
        return main(args)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f'error: {err}') from None


class LossLog:
    """Prints the mean loss of the last `every` iterations (and at the last one), with lr and elapsed time.

    Losses are summed on the device and read back only when printed, so logging does not stall a GPU.
    """

    def __init__(self, total, every):
        self.total, self.every = total, every
        self.running, self.count, self.tic = 0.0, 0, time.time()

    def update(self, done, loss, optimizer):
        self.running = self.running + loss.detach()
        self.count += 1
        if done % self.every == 0 or done == self.total:
            print(f'iter {done}/{self.total} loss {float(self.running) / self.count:.4f} '
                  f'lr {optimizer.param_groups[0]["lr"]:.2e} {time.time() - self.tic:.1f}s', flush=True)
            self.running, self.count = 0.0, 0
