"""Device and process-group set-up, for one process or for `torchrun` on one node or several.

Under torchrun (RANK, WORLD_SIZE and LOCAL_RANK in the environment) each process joins the default process
group: NCCL on GPUs, gloo on the CPU. Training scripts wrap their network in DistributedDataParallel and
split every global batch across the processes; generation and test scripts shard the images.
"""
import os

import torch
import torch.distributed as dist

from .errors import InputError


class Context:
    """rank, world_size, local_rank and device of this process; is_main is rank 0, the one that writes
    checkpoints, logs and score files."""

    def __init__(self, rank, world_size, local_rank, device):
        self.rank, self.world_size, self.local_rank, self.device = rank, world_size, local_rank, device

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1

    def shard(self, items):
        """This process's share of `items`: every world_size-th item from its rank on."""
        return list(items)[self.rank::self.world_size]

    def barrier(self):
        if self.distributed:
            dist.barrier()

    def all_reduce_sum(self, tensor):
        """Sum of `tensor` over the processes, in place (a copy is moved through the device NCCL needs)."""
        if self.distributed:
            reduced = tensor.to(self.device)
            dist.all_reduce(reduced)
            tensor.copy_(reduced.to(tensor.device))
        return tensor

    def all_gather_objects(self, obj):
        """[obj of rank 0, obj of rank 1, ...] on every process."""
        if not self.distributed:
            return [obj]
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def on_main(self, fn, *args):
        """Run fn(*args) on rank 0 only and hand its result, or the error it raised, to every process: for
        decisions and file operations that must happen once and be seen alike by all processes."""
        result = error = None
        if self.is_main:
            try:
                result = fn(*args)
            except (SystemExit, OSError, ValueError) as raised:
                error = raised
        if self.distributed:
            box = [(result, error)]
            dist.broadcast_object_list(box, src=0)
            result, error = box[0]
        if error is not None:
            raise error
        return result

    def print(self, *args, **kwargs):
        if self.is_main:
            print(*args, **kwargs, flush=True)


def init_distributed(cuda=None):
    """The Context for `--cuda` (None: the GPU when there is one), joining torchrun's process group if any."""
    if cuda is None:
        cuda = torch.cuda.is_available()
    if cuda and not torch.cuda.is_available():
        raise InputError('--cuda true was given but PyTorch sees no CUDA device; pass --cuda false to run on the CPU')
    world_size = int(os.environ.get('WORLD_SIZE', 1))
    rank = int(os.environ.get('RANK', 0))
    local_rank = int(os.environ.get('LOCAL_RANK', 0))
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise InputError(f'LOCAL_RANK {local_rank} but this node has {torch.cuda.device_count()} GPUs: '
                             'pass --nproc_per_node at most the number of GPUs')
        torch.cuda.set_device(local_rank)
        torch.backends.cudnn.benchmark = True
        device = torch.device('cuda', local_rank)
    else:
        device = torch.device('cpu')
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group('nccl' if cuda else 'gloo')
    return Context(rank, world_size, local_rank, device)


def close_distributed():
    if dist.is_initialized():
        dist.destroy_process_group()
