"""benchmark.py's jobs, one function each: ours (the scripts' path) against the release's algorithm on the same
data. Each bench_<job>(args, ctx) returns its rows (bench_measure.make_row)."""
import copy
import os
import shutil
import sys

import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_data import VOC_SHAPES, generation_items, lpg_dataset, one_epoch, scaled, voc_tree
from bench_measure import both_modes, make_row, run_folder, time_images, time_training, timed, variants

import main as main_script
import trainLPG
from datasets.boxes import BoxImageDataset
from datasets.io import read_label, save_palette_png
from datasets.registry import get_dataset
from datasets.segmentation import EvalItem, SegmentationDataset, TestImageDataset
from datasets.transforms import ScalePadCropFlip, nearest_centres
from datasets.voc import read_split, split_file, voc_items
from models.backbones import build_backbone, get_backbone
from models.lpg import LPGNet, backbone_probs, class_channel, lpg_input
from utils.engine.sample_stream import BatchStream
from utils.engine.training import training_loader
from utils.evaluation.logits import compute_logits, save_logits
from utils.pseudo_masks import generate_labels_per_class, generate_lpg

SCRIPT_WORKERS = {'generation': 2, 'resnet_test': 2, 'lpg_train': 4, 'vgg_train': 4}  # the scripts' --workers


def workers_of(args, job):
    return SCRIPT_WORKERS[job] if args.workers is None else args.workers


# ---- generation: genPseudoMasks.py against the per-class loop

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
        loss = {'ours': lambda batch: trainLPG.generator_loss(lpg, backbone, batch, prec),
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
