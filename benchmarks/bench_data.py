"""The data benchmark.py's jobs read: generated COCO / VOC trees in the real formats (datasets/synthetic), made
once per size under --data_dir, and the datasets built on them as the scripts build theirs."""
import math
import os
import shutil
import sys

from torch.utils.data import ConcatDataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from datasets.coco import COCO60LPGDataset
from datasets.synthetic import make_coco_like, make_voc_like
from datasets.voc import read_split, split_file, voc_box_items
from utils.parseCOCO import parse_coco

VOC_SHAPES = ((375, 500), (500, 375))  # (height, width): VOC's usual landscape and portrait images
COCO_SHAPE = (480, 640)


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


def generation_items(args, ctx, count):
    """count VOC-sized images with 1-3 classes, landscape and portrait in turn (ids made unique across the two)."""
    roots = [voc_tree(args, ctx, math.ceil(count / 2), scaled(shape, args.gen_size / 512)) for shape in VOC_SHAPES]
    trees = [voc_box_items(root, read_split(split_file(root, 'train'))) for root in roots]
    return [item._replace(image_id=f'{k}_{item.image_id}')
            for pair in zip(*trees) for k, item in enumerate(pair)][:count]


def lpg_dataset(args, ctx):
    """What trainLPG.build_dataset builds for --dataset coco, on parsed COCO-format data (about 1.1 (image, class)
    samples per image); its loader is trainLPG.main's: training_loader, dropping only a lone last sample."""
    coco = coco_tree(args, ctx, 2 * args.lpg_batch, scaled(COCO_SHAPE, args.lpg_crop / 512))
    return COCO60LPGDataset(coco, 'train2017', crop_size=args.lpg_crop, seed=args.seed, round_size=round)
