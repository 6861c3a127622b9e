r"""End-to-end benchmark of the scripts against the release's algorithm, both timed in one process.

    python benchmarks/benchmark.py --reference                                     # every job, on the GPU
    python benchmarks/benchmark.py --device cpu --jobs generation --reference --images 8
    OMP_NUM_THREADS=1 python -m torch.distributed.run --standalone --nproc_per_node 2 \
        benchmarks/benchmark.py --device cpu --jobs generation                      # generation sharded, gloo

Every job runs on generated data in the real COCO / VOC formats (datasets/synthetic) at the release's sizes,
through the modules the scripts use, data loading included: reading, decoding, augmenting and writing happen
inside the timed section, as in a real run. With --reference the release's algorithm runs too, on the same data
in the same process, so each speed-up is a ratio of two measurements of one run. Warm-up is not timed; CUDA is
synchronised at both ends of a timed section. Networks are randomly initialised: timings do not depend on weights.
"""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench_jobs import BENCHMARKS
from bench_measure import device_name, environment, print_row, speedups, tf32_state

from utils.engine.distributed import close_distributed, init_distributed
from utils.engine.precision import AMP_CHOICES, Precision

# The jobs are in bench_jobs.py, the data they read in bench_data.py, the timing, rows and report in
# bench_measure.py.
JOBS = ('generation', 'lpg_train', 'vgg_train', 'resnet_test', 'loader')


def amp_list(text):
    amps = [amp.strip() for amp in text.split(',') if amp.strip()]
    unknown = [amp for amp in amps if amp not in AMP_CHOICES]
    if unknown or not amps:
        raise argparse.ArgumentTypeError(f'{text!r}: expected a comma list of {",".join(AMP_CHOICES)}')
    return list(dict.fromkeys(amps))


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add('--device', choices=['cuda', 'cpu'], default='cuda' if torch.cuda.is_available() else 'cpu')
    add('--amp', type=amp_list, default=['auto'], help='our rows, a comma list of %s: bf16 / fp16 autocast or off '
        '(float32, TF32 off); default auto, as the scripts: bf16 on CUDA and on CPUs with bf16 units, else off. '
        'Values that give the same precision and memory format on this device share one row. Reference rows are '
        'float32 with TF32 off, contiguous' % ','.join(AMP_CHOICES))
    add('--reference', action='store_true', help="also run the release's algorithm of each job")
    add('--compile', action='store_true', help='generation: also run ours with the generator and the backbone '
        'wrapped in torch.compile (a trial: the scripts do not compile). The first compile falls in the untimed '
        'warm-up, whose seconds each row records; shapes the warm-up did not see recompile inside the timed part')
    add('--jobs', default=','.join(JOBS), help='comma list of %(default)s')
    add('--iterations', type=int, help='timed iterations (training) or batches (loader); default 20 on CUDA, 2 on CPU')
    add('--images', type=int, help='timed images (generation, resnet_test); default 128 on CUDA, 8 on the CPU')
    add('--warmup', type=int, help='untimed iterations, batches or images first; default 8 on CUDA, 1 on the CPU')
    add('--workers', type=int, help="loader workers; default the script's: 2 (generation, resnet_test), 4 (training)")
    add('--loader_workers', default='0,1,2,4,8', help='worker counts of the loader job')
    add('--data_dir', help='generated data is cached here (default: a temporary folder, removed at the end)')
    add('--out', help='JSON file (default benchmarks/<device>.json)')
    add('--seed', type=int, default=0)
    # Sizes: the defaults are the release's; smaller ones make a quick CPU smoke run.
    add('--gen_size', type=int, default=512, help='generation padding (genPseudoMasks --voc_test_size); images are '
        '500x375 and 375x500 scaled by gen_size/512')
    add('--image_batch_size', type=int, default=8, help='generation: images per loader batch')
    add('--pair_batch', type=int, default=16, help='generation: pairs per generator forward (--batch_size)')
    add('--lpg_batch', type=int, default=32)
    add('--lpg_crop', type=int, default=512, help='a multiple of 128; COCO images are 640x480 scaled by lpg_crop/512')
    add('--vgg_batch', type=int, default=30)
    add('--vgg_crop', type=int, default=321, help='VOC images are 500x375 scaled by vgg_crop/321')
    add('--test_size', type=int, default=513, help='side of the square ResNet-101 test images')
    add('--test_batch', type=int, default=8, help='test.py --batch_size')
    add('--writer_threads', type=int, default=4)
    return parser


def fill_defaults(args, ctx):
    """The CPU gets small counts; the sizes stay the release's unless given."""
    cuda = ctx.device.type == 'cuda'
    for key, on_cuda, on_cpu in (('iterations', 20, 2), ('images', 128, 8), ('warmup', 8, 1)):
        if getattr(args, key) is None:
            setattr(args, key, on_cuda if cuda else on_cpu)
    name = re.sub(r'[^a-z0-9]+', '_', torch.cuda.get_device_name(ctx.device).lower()).strip('_') if cuda else 'cpu'
    args.out = args.out or os.path.join(REPO, 'benchmarks', f'{name}.json')


def main(args):
    jobs = [job.strip() for job in args.jobs.split(',') if job.strip()]
    if set(jobs) - set(JOBS):
        raise SystemExit(f'unknown jobs {sorted(set(jobs) - set(JOBS))}: expected some of {",".join(JOBS)}')
    ctx = init_distributed(args.device == 'cuda')
    if ctx.distributed and jobs != ['generation']:
        raise SystemExit('under torchrun only --jobs generation runs (it shards the images like genPseudoMasks.py)')
    fill_defaults(args, ctx)
    load = os.getloadavg()  # other processes on the machine make the timings noisy
    temporary = args.data_dir is None
    if temporary:  # one folder for all processes, made by rank 0
        args.data_dir = ctx.all_gather_objects(tempfile.mkdtemp(prefix='lpg_bench_') if ctx.is_main else None)[0]
    for amp in args.amp:
        ctx.print(f'ours at --amp {amp}: {Precision(amp, ctx.device).describe()}')
    ctx.print(f'{device_name(ctx.device)}, torch {torch.__version__}, '
              f'TF32 {tf32_state(ctx.device)}, {ctx.world_size} process(es), data in {args.data_dir}')
    rows = []
    try:
        for job in jobs:
            for row in BENCHMARKS[job](args, ctx):
                rows.append(row)
                print_row(ctx, row)
                if 'pixels_alike_vs_reference' in row:
                    ctx.print(f'{job}: fraction of pixels labelled alike, ours (--amp {row["amp"]}) vs reference: '
                              f'{row["pixels_alike_vs_reference"]:.6f}')
    finally:
        ctx.barrier()
        if temporary and ctx.is_main:
            shutil.rmtree(args.data_dir, ignore_errors=True)
    if ctx.is_main:
        ratios = speedups(rows)
        for job, by_amp in ratios.items():
            for amp, ratio in by_amp.items():
                print(f'speed-up {job}: {ratio:.2f}x (ours --amp {amp} vs reference fp32 contiguous, same run)')
        report = dict(environment=environment(args, ctx, load), rows=rows, speedups=ratios)
        with open(args.out, 'w') as handle:
            json.dump(report, handle, indent=2)
        print(f'wrote {args.out}')
    close_distributed()


if __name__ == '__main__':
    main(get_args_parser().parse_args())
