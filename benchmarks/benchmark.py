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
import copy
import datetime
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import main as main_script
import trainLPG
from datasets.boxes import BoxImageDataset
from datasets.coco import COCO60LPGDataset
from datasets.io import read_label, save_palette_png
from datasets.registry import get_dataset
from datasets.segmentation import EvalItem, SegmentationDataset, TestImageDataset
from datasets.synthetic import make_coco_like, make_voc_like
from datasets.transforms import ScalePadCropFlip, nearest_centres
from datasets.voc import read_split, split_file, voc_box_items, voc_items
from models.backbones import build_backbone, get_backbone
from models.lpg import LPGNet, backbone_probs, class_channel, lpg_input
from utils.engine.distributed import close_distributed, init_distributed
from utils.engine.precision import AMP_CHOICES, Precision, cpu_description
from utils.engine.run_outputs import NonFiniteGuard
from utils.engine.sample_stream import BatchStream
from utils.engine.training import training_loader
from utils.evaluation.logits import compute_logits, save_logits
from utils.parseCOCO import parse_coco
from utils.pseudo_masks import generate_labels_per_class, generate_lpg

JOBS = ('generation', 'lpg_train', 'vgg_train', 'resnet_test', 'loader')
SCRIPT_WORKERS = {'generation': 2, 'resnet_test': 2, 'lpg_train': 4, 'vgg_train': 4}  # the scripts' --workers
VOC_SHAPES = ((375, 500), (500, 375))  # (height, width): VOC's usual landscape and portrait images
COCO_SHAPE = (480, 640)
MEMORY_KIND = {'cuda': 'CUDA max_memory_allocated',
               'cpu': 'CPU peak RSS of the main process since it started (cannot be reset; loader workers not counted)'}


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


# ---- generated data, made once per size under --data_dir

def cached(ctx, path, make):
    """Rank 0 writes the tree once (a finished one holds `.done`); the other processes wait for it."""
    if ctx.is_main and not os.path.exists(os.path.join(path, '.done')):
        shutil.rmtree(path, ignore_errors=True)
        make(path)
        open(os.path.join(path, '.done'), 'w').close()
    ctx.barrier()
    return path


def scaled(shape, factor):
    return tuple(max(32, round(side * factor)) for side in shape)


def voc_tree(args, ctx, num, shape):
    path = os.path.join(args.data_dir, f'voc_{shape[0]}x{shape[1]}_{num}')
    return os.path.join(cached(ctx, path, lambda p: make_voc_like(p, num, 0, shape, args.seed)), 'VOC2012')


def coco_tree(args, ctx, num, shape):
    """COCO-format images and instances json, then utils/parseCOCO.py's files, as trainLPG.py reads them."""
    path = os.path.join(args.data_dir, f'coco_{shape[0]}x{shape[1]}_{num}')
    return cached(ctx, path, lambda p: parse_coco(make_coco_like(p, num, shape, args.seed)))


def one_epoch(args, dataset, batch, workers):
    """The dataset repeated so that warm-up and timed batches (and what the workers prefetch) fall in one epoch:
    on data this small an epoch would end every few batches, restarting the loader's prefetching, which the
    epochs of a real run (100k+ samples) almost never do. Each repeat is read and augmented anew."""
    batches = args.warmup + args.iterations + 2 * workers + 1
    return ConcatDataset([dataset] * math.ceil(batches * batch / len(dataset)))


def workers_of(args, job):
    return SCRIPT_WORKERS[job] if args.workers is None else args.workers


# ---- generation: genPseudoMasks.py against the per-class loop

def generation_items(args, ctx, count):
    """count VOC-sized images with 1-3 classes, landscape and portrait in turn (ids made unique across the two)."""
    roots = [voc_tree(args, ctx, math.ceil(count / 2), scaled(shape, args.gen_size / 512)) for shape in VOC_SHAPES]
    trees = [voc_box_items(root, read_split(split_file(root, 'train'))) for root in roots]
    return [item._replace(image_id=f'{k}_{item.image_id}')
            for pair in zip(*trees) for k, item in enumerate(pair)][:count]


def generate_batched(args, ctx, precision, lpg, backbone, items, out_dir):
    """genPseudoMasks.py's generator loop (utils.pseudo_masks.generate_lpg), with the release's overlap rule."""
    failed, _ = generate_lpg(lpg, backbone, items, out_dir, ctx.device, precision,
                                            test_size=args.gen_size, pair_batch=args.pair_batch,
                                            image_batch=args.image_batch_size, workers=workers_of(args, 'generation'),
                                            writer_threads=args.writer_threads, progress=False)
    if failed:
        raise RuntimeError(f'the benchmark could not read its own images: {failed[:3]}')


def generate_release(args, ctx, lpg, backbone, items, out_dir):
    """The release: one image at a time read in the main process, per-class batch-1 generator forwards in
    float32, each PNG written before the next image."""
    dataset = BoxImageDataset(items, args.gen_size)
    for index in range(len(dataset)):
        sample = dataset[index]
        label = generate_labels_per_class(lpg, sample, ctx.device, backbone)
        save_palette_png(os.path.join(out_dir, f'{sample.image_id}.png'), label)


def pixels_alike(ctx, items, dir_a, dir_b):
    """Fraction of the pixels of all processes' masks that carry the same label in both folders."""
    same = total = 0
    for image_id, *_ in items:
        a, b = (read_label(os.path.join(folder, f'{image_id}.png')) for folder in (dir_a, dir_b))
        same, total = same + int((a == b).sum()), total + a.size
    counts = ctx.all_gather_objects((same, total))
    return sum(s for s, _ in counts) / sum(t for _, t in counts)


def bench_generation(args, ctx):
    items = generation_items(args, ctx, args.warmup + args.images)
    warm, todo = items[:args.warmup], ctx.shard(items[args.warmup:])  # every process warms up
    torch.manual_seed(args.seed)
    weights = LPGNet(in_channels=5).eval(), build_backbone('vgg16', get_dataset('voc').num_classes).eval()
    out_dir = os.path.join(args.data_dir, f'masks_rank{ctx.rank}')
    details = dict(round=2, backbone='vgg16 (21 classes)', padded_to=args.gen_size, image_batch=args.image_batch_size,
                   pair_batch=args.pair_batch, workers=workers_of(args, 'generation'))

    def measure(mode, prec):
        lpg, backbone = (prec.prepare_model(copy.deepcopy(net)) for net in weights)
        if mode == 'ours compiled':
            lpg, backbone = torch.compile(lpg), torch.compile(backbone)
        ours = lambda part, out: generate_batched(args, ctx, prec, lpg, backbone, part, out)
        run = {'ours': ours, 'ours compiled': ours,
               'reference': lambda part, out: generate_release(args, ctx, lpg, backbone, part, out)}[mode]
        row = time_images(args, ctx, 'generation', mode, prec, run, warm, todo, out_dir, **details)
        torch._dynamo.reset()  # the next row compiles (or not) from scratch
        return row

    runs = variants(args, ctx, compiled=True)
    rows = [measure(mode, prec) for mode, prec in runs]
    if args.reference:
        folders = [run_folder(out_dir, mode, prec) for mode, prec in runs]
        for row, folder in zip(rows[:-1], folders[:-1]):
            row['pixels_alike_vs_reference'] = pixels_alike(ctx, todo, folder, folders[-1])
    shutil.rmtree(out_dir)
    return rows


# ---- training: trainLPG.py and main.py

def lpg_dataset(args, ctx):
    """What trainLPG.build_dataset builds for --dataset coco, on parsed COCO-format data (about 1.1 (image, class)
    samples per image); its loader is trainLPG.main's: training_loader, dropping only a lone last sample."""
    coco = coco_tree(args, ctx, 2 * args.lpg_batch, scaled(COCO_SHAPE, args.lpg_crop / 512))
    return COCO60LPGDataset(coco, 'train2017', crop_size=args.lpg_crop, seed=args.seed, round_size=round)


def release_lpg_loss(lpg, backbone, batch, device):
    """The release's order of work in float32: the frozen backbone reads one sample at a time (batch-1
    forwards); the generator forward and loss are the same."""
    images, box_masks, targets, class_ids = (tensor.to(device) for tensor in batch)
    with torch.no_grad():
        seg_probs = torch.cat([class_channel(backbone_probs(backbone, images[i:i + 1]), class_ids[i:i + 1])
                               for i in range(len(images))])
    return F.cross_entropy(lpg(lpg_input(images, box_masks, seg_probs)), targets)


def bench_lpg_train(args, ctx):
    dataset = lpg_dataset(args, ctx)
    torch.manual_seed(args.seed)
    weights = LPGNet(in_channels=5), build_backbone('vgg16', get_dataset('coco').num_classes).eval()
    details = dict(round=2, batch=args.lpg_batch, crop=args.lpg_crop, workers=workers_of(args, 'lpg_train'),
                   backbone='vgg16 (61 classes, frozen)')

    def measure(mode, prec):
        lpg = prec.prepare_model(copy.deepcopy(weights[0])).train()
        backbone = prec.frozen.prepare_model(copy.deepcopy(weights[1])).eval().requires_grad_(False)
        optimizer = torch.optim.Adam(lpg.parameters(), lr=1e-4, weight_decay=5e-4)
        loss = {'ours': lambda batch: trainLPG.train_step(lpg, backbone, batch, prec),
                'reference': lambda batch: release_lpg_loss(lpg, backbone, batch, ctx.device)}[mode]
        loader = training_loader(one_epoch(args, dataset, args.lpg_batch, details['workers']), args.lpg_batch, ctx,
                                 details['workers'], args.seed, drop_last=lambda samples, batch: samples % batch == 1)
        return time_training(args, ctx, 'lpg_train', mode, prec, loader, optimizer,
                             lambda batch: (loss(batch), len(batch[0])), **details)
    return both_modes(args, ctx, measure, training=True)


def bench_vgg_train(args, ctx):
    """main.py's path (its build_dataset for VOC, on the ground-truth masks); the reference differs only in
    precision (float32, no channels-last)."""
    root = voc_tree(args, ctx, 2 * args.vgg_batch, scaled(VOC_SHAPES[0], args.vgg_crop / 321))
    dataset = SegmentationDataset(voc_items(root, read_split(split_file(root, 'train')), 'SegmentationClassAug'),
                                  augment=ScalePadCropFlip(args.vgg_crop, nearest_centres, seed=args.seed,
                                                           round_size=round))
    torch.manual_seed(args.seed)
    weights, spec = build_backbone('vgg16', get_dataset('voc').num_classes), get_backbone('vgg16')
    details = dict(batch=args.vgg_batch, crop=args.vgg_crop, workers=workers_of(args, 'vgg_train'))

    def measure(mode, prec):
        model = prec.prepare_model(copy.deepcopy(weights)).train()
        optimizer = torch.optim.SGD(spec.training_setup(model, spec.schedule.lr, 5e-4), lr=spec.schedule.lr,
                                    momentum=0.9)
        loader = training_loader(one_epoch(args, dataset, args.vgg_batch, details['workers']), args.vgg_batch, ctx,
                                 details['workers'], args.seed, drop_last=lambda samples, batch: samples >= batch)

        def loss_of(batch):
            images, labels, _ids = batch
            images, labels = prec.prepare_input(images), labels.to(ctx.device, non_blocking=True)
            with prec.autocast():
                outputs = model(images)
            return main_script.segmentation_loss(outputs, labels), len(labels)
        return time_training(args, ctx, 'vgg_train', mode, prec, loader, optimizer, loss_of, **details)
    return both_modes(args, ctx, measure, training=True)


# ---- ResNet-101 test: test.py --type test (utils.evaluation.compute_logits) against one image at a time

@torch.no_grad()
def logits_release(ctx, model, dataset, out_dir):
    """The release: one image at a time, read in the main process, float32, logits saved before the next."""
    for index in range(len(dataset)):
        sample = dataset[index]
        logits = model(sample.image.to(ctx.device)[None])
        save_logits(os.path.join(out_dir, f'{sample.image_id}.npz'), logits[0].cpu().numpy(),
                    tuple(sample.image.shape[-2:]), sample.image_size)


def bench_resnet_test(args, ctx):
    root = voc_tree(args, ctx, args.warmup + args.images, (args.test_size, args.test_size))
    items = [EvalItem(i, os.path.join(root, 'JPEGImages', f'{i}.jpg')) for i in read_split(split_file(root, 'train'))]
    torch.manual_seed(args.seed)
    weights = build_backbone('resnet101', get_dataset('voc').num_classes).eval()
    out_dir = os.path.join(args.data_dir, 'logits')
    pad_to = args.test_size if get_backbone('resnet101').pad_to_test_size else None  # test.py's rule: not padded
    details = dict(size=args.test_size, scales='1, 0.5, 0.75 (max-fused)', batch=args.test_batch,
                   workers=workers_of(args, 'resnet_test'))

    def measure(mode, prec):
        model = prec.prepare_model(copy.deepcopy(weights)).eval()
        run = {'ours': lambda part, out: compute_logits(model, part, out, pad_to, prec, args.test_batch,
                                                        details['workers'], args.writer_threads, progress=False),
               'reference': lambda part, out: logits_release(ctx, model, TestImageDataset(part, pad_to), out)}[mode]
        return time_images(args, ctx, 'resnet_test', mode, prec, run, items[:args.warmup], items[args.warmup:],
                           out_dir, **details)

    rows = both_modes(args, ctx, measure)
    shutil.rmtree(out_dir)
    return rows


# ---- the LPG training data pipeline alone

def bench_loader(args, ctx):
    """Samples/s of COCO60LPGDataset through training_loader per worker count. The first max(warmup, workers)
    batches are not timed: with w workers the first w batches come out together, so timing starts at the
    boundary of a round and what the workers buffered during start-up does not inflate the rate."""
    dataset = lpg_dataset(args, ctx)
    rows = []
    for workers in [int(w) for w in args.loader_workers.split(',')]:
        batches = BatchStream(training_loader(one_epoch(args, dataset, args.lpg_batch, workers), args.lpg_batch,
                                              ctx, workers, args.seed,
                                              drop_last=lambda samples, batch: samples % batch == 1))
        for _ in range(max(args.warmup, workers)):
            next(batches)
        samples = []
        measured = timed(ctx, lambda: [samples.append(len(next(batches)[0])) for _ in range(args.iterations)])
        rows.append(make_row(ctx, 'loader', f'{workers} workers', None, sum(samples), 'samples', args.iterations,
                             'batch', measured, batch=args.lpg_batch, crop=args.lpg_crop, workers=workers))
        batches = None  # stops the workers
    return rows


BENCHMARKS = {'generation': bench_generation, 'lpg_train': bench_lpg_train, 'vgg_train': bench_vgg_train,
              'resnet_test': bench_resnet_test, 'loader': bench_loader}


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
