"""What benchmark.py measures and how it reports it: timed sections (barriers, CUDA synchronised at both ends,
peak memory), the rows of a job (ours at each --amp, compiled, the release's reference), the warm-up and timed
loops shared by the image jobs and the training jobs, and the environment and speed-ups the JSON records."""
import datetime
import os
import platform
import resource
import shlex
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from utils.engine.precision import Precision, cpu_description
from utils.engine.run_outputs import NonFiniteGuard
from utils.engine.sample_stream import BatchStream

MEMORY_KIND = {'cuda': 'CUDA max_memory_allocated',
               'cpu': 'CPU peak RSS of the main process since it started (cannot be reset; loader workers not counted)'}


# ---- measurement

def timed(ctx, run):
    """Seconds of run() between two barriers (under torchrun: the wall time of the slowest process), CUDA
    synchronised at both ends, and the peak memory in GiB (the largest over the processes)."""
    cuda = ctx.device.type == 'cuda'

    def settle():
        if cuda:
            torch.cuda.synchronize(ctx.device)
        ctx.barrier()

    settle()
    if cuda:
        torch.cuda.reset_peak_memory_stats(ctx.device)
    tic = time.perf_counter()
    run()
    settle()
    seconds = time.perf_counter() - tic
    memory = (torch.cuda.max_memory_allocated(ctx.device) / 2 ** 30 if cuda  # ru_maxrss: KiB on Linux
              else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
    return seconds, max(ctx.all_gather_objects(memory))


def make_row(ctx, job, mode, precision, items, item_unit, steps, step_unit, measured, **details):
    """One row; precision is a Precision, or None for rows that compute nothing (the loader)."""
    seconds, memory = measured
    layout = {None: 'n/a', True: 'channels-last', False: 'contiguous'}[precision and precision.channels_last]
    return dict(job=job, mode=mode, amp=getattr(precision, 'amp_flags', 'n/a'),
                precision=precision.label if precision else 'n/a', memory_format=layout,
                throughput=round(items / seconds, 3),
                throughput_unit=f'{item_unit}/s', ms_per=round(1000 * seconds / steps, 1), ms_per_unit=step_unit,
                items=items, seconds=round(seconds, 3), peak_memory_gib=round(memory, 3),
                peak_memory_kind=MEMORY_KIND[ctx.device.type], includes_data_loading='yes',
                processes=ctx.world_size, **details)


def print_row(ctx, row):
    kind = 'CUDA max allocated' if ctx.device.type == 'cuda' else 'CPU peak RSS'
    memory = f'{row["peak_memory_gib"]:.2f} GiB ({kind})'
    ctx.print(f'{row["job"]:<12} {row["mode"]:<14} {row["amp"]:<11} {row["precision"]:<5} {row["memory_format"]:<14}'
              f'{row["throughput"]:>9.2f} '
              f'{row["throughput_unit"]:<10} {row["ms_per"]:>9.1f} ms/{row["ms_per_unit"]:<10} {memory:<32} '
              f'includes data loading: {row["includes_data_loading"]}')


def variants(args, ctx, training=False, compiled=False):
    """(mode, Precision) of each row: ours at each --amp value, where values that resolve to the same precision
    and memory format on this device share one row (its amp_flags names them all, e.g. 'auto = off'), with
    compiled (and --compile) each again as 'ours compiled', then with --reference the release: float32, TF32 off,
    contiguous. training: the trainings' memory format."""
    ours = {}
    for amp in args.amp:
        precision = Precision(amp, ctx.device, training=training)
        ours.setdefault((precision.label, precision.channels_last), (precision, []))[1].append(amp)
    rows = []
    for precision, amps in ours.values():
        precision.amp_flags = ' = '.join(amps)
        rows.append(('ours', precision))
    if compiled and args.compile:
        rows += [('ours compiled', precision) for _, precision in rows]
    if args.reference:
        reference = Precision('off', ctx.device, channels_last=False)
        reference.amp_flags = 'off'
        rows.append(('reference', reference))
    return rows


def both_modes(args, ctx, measure, training=False):
    """measure(mode, precision) for each of variants(). Each call builds its own networks, freed before the next."""
    return [measure(mode, precision) for mode, precision in variants(args, ctx, training)]


def run_folder(out_dir, mode, precision):
    """Where a row writes its outputs: one folder per mode, precision and memory format."""
    layout = 'channels_last' if precision.channels_last else 'contiguous'
    return os.path.join(out_dir, f'{mode.replace(" ", "_")}_{precision.label}_{layout}')


def time_images(args, ctx, job, mode, precision, run, warm, todo, out_dir, **details):
    """run(items, folder) on the warm-up images, then timed on this process's images; counts all processes'.
    The row also records the warm-up's seconds (with torch.compile, they include compiling)."""
    warmup_seconds, _ = timed(ctx, lambda: run(warm, os.path.join(out_dir, 'warmup')))
    measured = timed(ctx, lambda: run(todo, run_folder(out_dir, mode, precision)))
    images = sum(ctx.all_gather_objects(len(todo)))
    return make_row(ctx, job, mode, precision, images, 'images', images, 'image', measured,
                    warmup_seconds=round(warmup_seconds, 1), **details)


def time_training(args, ctx, job, mode, precision, loader, optimizer, loss_of, **details):
    """Warm-up, then the timed iterations of the scripts' update: loss, the scripts' finite-loss check (ours
    only: one host sync per iteration; the release had none), backward, (scaled) optimizer step.
    loss_of(batch) -> (loss, samples in the batch)."""
    batches, samples = BatchStream(loader), []
    guard = NonFiniteGuard(ctx, 'stop', 0, os.path.join(args.data_dir, 'no_checkpoint')) if mode == 'ours' else None

    def update():
        loss, size = loss_of(next(batches))
        if guard is not None:
            guard.loss_is_finite(loss, len(samples) + 1)  # stops the benchmark on a non-finite loss
        optimizer.zero_grad(set_to_none=True)
        precision.scaler.scale(loss).backward()
        precision.scaler.step(optimizer)
        precision.scaler.update()
        samples.append(size)

    for _ in range(args.warmup):
        update()
    samples.clear()
    measured = timed(ctx, lambda: [update() for _ in range(args.iterations)])
    return make_row(ctx, job, mode, precision, sum(samples), 'samples', args.iterations, 'iteration', measured,
                    **details)


# ---- report

def device_name(device):
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return cpu_description()


def tf32_state(device):
    """What float32 convolutions and matrix products compute in ('ieee': true float32, TF32 off)."""
    if device.type != 'cuda':
        return 'n/a (CPU)'
    conv = getattr(torch.backends.cudnn, 'conv', None)
    if conv is not None and hasattr(conv, 'fp32_precision'):
        return f'cudnn conv {conv.fp32_precision}, cuda matmul {torch.backends.cuda.matmul.fp32_precision}'
    return f'allow_tf32 cudnn {torch.backends.cudnn.allow_tf32}, matmul {torch.backends.cuda.matmul.allow_tf32}'


def environment(args, ctx, load_before):
    ours = [(amp, Precision(amp, ctx.device)) for amp in args.amp]
    return dict(torch=torch.__version__, torch_cuda_build=torch.version.cuda, device=device_name(ctx.device),
                precision_ours={amp: f'{p.label} ({p.reason})' for amp, p in ours},
                precision_reference='fp32' if args.reference else None,
                tf32=tf32_state(ctx.device), date=datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
                command=(f'torchrun --nproc_per_node {ctx.world_size} ' if ctx.distributed else 'python ')
                + shlex.join(sys.argv), processes=ctx.world_size,
                omp_num_threads=os.environ.get('OMP_NUM_THREADS'), torch_threads=torch.get_num_threads(),
                python=platform.python_version(), load_average_1_5_15min_at_start=load_before,
                args={k: v for k, v in vars(args).items() if k != 'data_dir'})


def speedups(rows):
    """{job: {amp flags of an ours row: ours / reference throughput}} of every job with a reference row,
    both measured in this run."""
    reference = {row['job']: row['throughput'] for row in rows if row['mode'] == 'reference'}
    ratios = {}
    for row in rows:
        if row['mode'] != 'reference' and row['job'] in reference and row['amp'] != 'n/a':
            name = row['amp'] + row['mode'][len('ours'):]  # e.g. 'auto', 'auto compiled'
            ratios.setdefault(row['job'], {})[name] = round(row['throughput'] / reference[row['job']], 3)
    return ratios
