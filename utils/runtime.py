"""What every script shares: the device flags, seeding and the scripts' error handling."""
import argparse
import os
import random

import numpy as np
import torch

from datasets.io import release_folders
from utils.distributed import close_distributed
from utils.interrupts import INTERRUPTS


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


def add_device_args(parser, workers=None, seed=False):
    """`--cuda [true|false]` (default: use a GPU when there is one); `--workers N` when the script loads data
    in worker processes (default `workers`), `--seed N` when it draws random numbers."""
    parser.add_argument('--cuda', type=str2bool, nargs='?', const=True, default=None,
                        help='run on the GPU (true) or the CPU (false); default: the GPU when one is available')
    if workers is not None:
        parser.add_argument('--workers', type=int, default=workers, help='data-loading worker processes')
    if seed:
        parser.add_argument('--seed', type=int, default=0, help='random seed (data order, augmentation, weights)')
        parser.add_argument('--deterministic', action='store_true',
                            help='deterministic algorithms (torch.use_deterministic_algorithms; on a GPU the few ops '
                            'without one warn), so that a run repeats exactly on the same machine and thread count')


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


def run_script(main, parser):
    """Parse the flags and run `main`; bad input (a missing or malformed file) ends with its message,
    not a traceback. A torchrun process group is closed on the way out."""
    args = parser.parse_args()
    INTERRUPTS.install()  # SIGTERM / SIGINT: one line and status 143 / 130, after saving where a loop can
    try:
        return main(args)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f'error: {err}') from None
    finally:
        INTERRUPTS.uninstall()
        release_folders()
        close_distributed()
