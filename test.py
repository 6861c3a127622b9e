"""Evaluate a segmentation backbone (optionally with DenseCRF), or score a folder of pseudo masks.

    python test.py --type test --root_path VOC2012 --model_type vgg16 --model_path final.pth
    python test.py --type crf  --root_path VOC2012 --model_type vgg16 --n_jobs 8
    python test.py --type masks --root_path VOC2012 --pred_dir PSEUDO/vgg16_Round1 --split train_aug

`test` writes the raw logits (`<save_path>/logits/ID.npz`), predictions (`pred/ID.png`) and `scores_test.json`
(default save_path: `eval_<split>/` beside the model), and records the run in `./.lpg/` of the working directory.
`crf` reuses those logits (computing any that are missing), refines them with DenseCRF in parallel and writes
`crf/ID.png` and `scores_crf.json` with the scores without and with CRF; without --model_path it reads the
last `--type test` run of --model_type started from the same working directory, as the release's commands do. `masks` scores pseudo masks against
the ground truth (default `SegmentationClassAug`), the pseudo-mask quality table, and writes `scores_masks.json`.
"""
import argparse
import json
import os
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from joblib import Parallel, delayed
from torch.utils.data import DataLoader
from tqdm import tqdm

from datasets.boxes import collate_boxes
from datasets.io import (BackgroundWriter, atomic_open, folder_in_root, read_image_bgr, read_label, remove_files,
                         remove_stale_temporaries, save_palette_png, write_json)
from datasets.registry import get_dataset
from datasets.segmentation import TestImageDataset
from datasets.voc import read_split, resolve_voc_root, split_file
from models.backbones import backbone_names, build_backbone, get_backbone
from utils import layout
from utils.checkpoint import load_weights
from utils.crf import DenseCRF
from utils.metric import confusion_matrix, scores_from_confusion
from utils.distributed import init_distributed
from utils.precision import Precision, add_amp_arg
from utils.records import Record, settings_of
from utils.runtime import add_device_args, run_script

# test.py evaluates on PASCAL VOC 2012.
VOC_CLASSES = get_dataset('voc').classes
DEFAULT_TEST_SIZE = 513


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--type', choices=['test', 'crf', 'masks'], default='test')
    parser.add_argument('--root_path', required=True, help='VOC2012 folder')
    parser.add_argument('--model_type', choices=backbone_names(), default='vgg16')
    parser.add_argument('--model_path', help='backbone checkpoint (test; crf, where it defaults to the model of the '
                        'last --type test run of --model_type started from the working directory, as in the release)')
    parser.add_argument('--pred_dir', help='folder of predicted / pseudo masks to score (masks)')
    parser.add_argument('--split', help='split under ImageSets/Segmentation; default val (train_aug for masks)')
    parser.add_argument('--split_file', help='image id list instead of --split')
    parser.add_argument('--gt_dir', help='ground-truth folder (relative to --root_path or absolute); '
                        'default SegmentationClass (SegmentationClassAug for masks)')
    parser.add_argument('--save_path', help='output folder; default <model dir>/eval_<split> or <pred_dir>/..')
    parser.add_argument('--n_jobs', type=int, default=4, help='parallel DenseCRF processes')
    parser.add_argument('--test_size', type=int,
                        help='inputs of the backbones that are tested padded (VGG16) are padded (bottom/right) to '
                        f'this size, default {DEFAULT_TEST_SIZE} as in the original (with --type crf and no '
                        '--model_path: that of the last --type test run); the others (ResNet-101) are not padded')
    parser.add_argument('--overwrite', action='store_true',
                        help='recompute the logits in the output folder when they came from another model or settings '
                        '(without it such a folder is refused)')
    parser.add_argument('--match_release', action='store_true',
                        help='run the CRF of backbones tested padded (VGG16) on the whole padded input, the image '
                        'padded with black, then crop, as the release does (default: on the image itself)')
    parser.add_argument('--batch_size', type=int, default=8, help='images per forward (those of one input size)')
    parser.add_argument('--writer_threads', type=int, default=4, help='threads writing logits')
    add_amp_arg(parser)
    add_device_args(parser, workers=2)
    return parser


def save_logits(path, logits, input_size, image_size):
    with atomic_open(path) as handle:
        np.savez(handle, logits=logits, input_size=np.array(input_size), image_size=np.array(image_size))


@torch.no_grad()
def compute_logits(args, ctx, precision, root, ids, logits_dir):
    """Raw backbone logits of this process's images (float32 .npz, with the network input size they cover and
    the image size). Returns the (image_id, reason) of the images that could not be read.

    Images of one input size are batched (all of them for backbones tested padded); loader workers read and
    pad, writer threads save."""
    todo = [i for i in ctx.shard(ids) if not os.path.exists(os.path.join(logits_dir, f'{i}.npz'))]
    if not todo:
        return []
    model = build_backbone(args.model_type, len(VOC_CLASSES))
    load_weights(model, args.model_path, what=f'{args.model_type} VOC backbone ({len(VOC_CLASSES)} classes)')
    model = precision.prepare_model(model).eval()
    pad_to = args.test_size if get_backbone(args.model_type).pad_to_test_size else None
    items = [(i, os.path.join(root, 'JPEGImages', f'{i}.jpg')) for i in todo]
    loader = DataLoader(TestImageDataset(items, pad_to), batch_size=args.batch_size, num_workers=args.workers,
                        collate_fn=collate_boxes, pin_memory=ctx.device.type == 'cuda')
    failed = []
    with BackgroundWriter(args.writer_threads) as writer:
        for samples in tqdm(loader, desc='logits', unit='batch', disable=not ctx.is_main):
            by_size = {}
            for sample in samples:
                if 'error' in sample:
                    failed.append((sample['image_id'], sample['error']))
                else:
                    by_size.setdefault(tuple(sample['image'].shape[-2:]), []).append(sample)
            for size, group in by_size.items():
                images = precision.prepare_input(torch.stack([sample['image'] for sample in group]))
                with precision.autocast():
                    logits = model(images)
                for sample, image_logits in zip(group, logits.float().cpu().numpy()):
                    writer.submit(save_logits, os.path.join(logits_dir, f'{sample["image_id"]}.npz'), image_logits,
                                  size, sample['image_size'])
    return failed


def probabilities(logits_path):
    """Softmax of the logits resized (bilinear, align_corners=True) to the network input they cover
    (the padded input for backbones tested padded), and the (height, width) of the image."""
    with np.load(logits_path) as entry:
        logits = torch.from_numpy(entry['logits'])[None]
        input_size = tuple(int(side) for side in entry['input_size'])
        image_size = tuple(int(side) for side in entry['image_size'])
    logits = F.interpolate(logits, size=input_size, mode='bilinear', align_corners=True)
    return torch.softmax(logits[0], dim=0).numpy(), image_size


def evaluate_image(root, gt_dir, image_id, logits_dir, out_dirs, crf_params, crf_on_padded=False):
    """Prediction without (and, given crf_params, with) CRF for one image. Returns (image_id, confusion
    matrices), or (image_id, reason) when the image cannot be scored: no logits (its image failed), a missing
    or unreadable ground truth, or one whose size is not the image's (never scored on a crop).

    The CRF runs on the image itself, or with crf_on_padded (the release) on the whole padded network input,
    the image padded with black, and is cropped afterwards."""
    logits_path = os.path.join(logits_dir, f'{image_id}.npz')
    if not os.path.exists(logits_path):
        return image_id, 'no logits (the image could not be read)'
    try:
        label = read_label(os.path.join(gt_dir, f'{image_id}.png'))
    except (OSError, ValueError) as error:
        return image_id, str(error)
    prob, image_size = probabilities(logits_path)
    if label.shape != image_size:
        return image_id, (f'ground truth {os.path.join(gt_dir, image_id)}.png is {label.shape[1]}x{label.shape[0]} '
                          f'but the image is {image_size[1]}x{image_size[0]}')
    height, width = label.shape
    prediction = prob[:, :height, :width].argmax(0).astype(np.uint8)
    save_palette_png(os.path.join(out_dirs['pred'], f'{image_id}.png'), prediction)
    hists = {'without CRF': confusion_matrix(label, prediction, len(VOC_CLASSES))}
    if crf_params is not None:
        image = read_image_bgr(os.path.join(root, 'JPEGImages', f'{image_id}.jpg')).astype(np.uint8)
        if crf_on_padded:
            image = np.pad(image, ((0, prob.shape[1] - height), (0, prob.shape[2] - width), (0, 0)))
        else:
            prob = np.ascontiguousarray(prob[:, :height, :width])
        refined = DenseCRF(**crf_params)(image, prob).argmax(0)[:height, :width].astype(np.uint8)
        save_palette_png(os.path.join(out_dirs['crf'], f'{image_id}.png'), refined)
        hists['with CRF'] = confusion_matrix(label, refined, len(VOC_CLASSES))
    return image_id, hists


def to_json_scores(scores):
    """Scores with class names, NaN (class absent from the ground truth) as null."""
    clean = lambda v: None if v is None or np.isnan(v) else float(v)
    out = {key: clean(value) for key, value in scores.items() if key != 'Class IoU'}
    out['Class IoU'] = {VOC_CLASSES[i]: clean(v) for i, v in scores['Class IoU'].items()}
    return out


def print_scores(title, scores):
    print(f'\n{title}')
    for key in ('Pixel Accuracy', 'Mean Accuracy', 'Frequency Weighted IoU', 'Mean IoU'):
        value = scores[key]
        print(f'  {key:<24}{"n/a" if value is None else f"{100 * value:6.2f}"}')
    present = {name: v for name, v in scores['Class IoU'].items() if v is not None}
    print('  ' + '  '.join(f'{name} {100 * v:.1f}' for name, v in present.items()))


def score_masks(pred_dir, gt_dir, ids):
    """Confusion matrix of the pseudo masks in pred_dir against the ground truth, over `ids`."""
    hist = np.zeros((len(VOC_CLASSES),) * 2, dtype=np.int64)
    for image_id in ids:
        pred_path = os.path.join(pred_dir, f'{image_id}.png')
        if not os.path.exists(pred_path):
            raise SystemExit(f'{pred_path}: no pseudo mask for image {image_id} of the split')
        gt = read_label(os.path.join(gt_dir, f'{image_id}.png'))
        pred = read_label(pred_path)
        if pred.shape != gt.shape:
            raise SystemExit(f'{pred_path}: size {pred.shape} differs from the ground truth {gt.shape}')
        hist += confusion_matrix(gt, pred, len(VOC_CLASSES))
    return hist


def gathered_scores(ctx, hist):
    """Scores of the confusion matrix summed over the processes (one all-reduce)."""
    return to_json_scores(scores_from_confusion(ctx.all_reduce_sum(torch.from_numpy(hist)).numpy()))


# Flags that change how the logits are computed, not what they are.
RUNTIME_FLAGS = {'type', 'n_jobs', 'batch_size', 'writer_threads', 'workers', 'overwrite', 'gt_dir', 'match_release',
                 'pred_dir', 'save_path', 'root_path', 'split_file'}


def logits_record(args, split):
    """The record of the logits folder: the model they come from and the settings that shape them."""
    save_path = args.save_path or layout.eval_dir(args.model_path, split)
    settings = settings_of(args, RUNTIME_FLAGS | {'model_path', 'split'})
    if not get_backbone(args.model_type).pad_to_test_size:
        settings.pop('test_size')  # unpadded backbones do not use it
    return Record(layout.eval_subdir(save_path, 'logits'), settings, {'model': args.model_path})


def last_test_run(args):
    """`--type crf` without `--model_path`, as the release's second evaluation command: the model and logits
    of the last `--type test` run of this model type started from the working directory."""
    record_path = layout.last_test_record(args.model_type)
    if not os.path.isfile(record_path):
        raise SystemExit(f'--type crf without --model_path reads the logits of the last `test.py --type test '
                         f'--model_type {args.model_type}` run started from this folder ({os.getcwd()}), and there '
                         f'is none: run that first, or pass --model_path')
    with open(record_path) as handle:
        record = json.load(handle)
    if args.split and args.split != record['split']:
        raise SystemExit(f'the last --type test run of {args.model_type} started here was on split '
                         f'{record["split"]!r}, not {args.split!r}: pass --model_path')
    print(f'--type crf: using the logits of the last --type test run of {args.model_type} started here: '
          f'{record["save_path"]} (model {record["model_path"]}, split {record["split"]})', flush=True)
    args.model_path = record['model_path']
    args.save_path = args.save_path or record['save_path']
    args.split = record['split']
    for name in ('test_size', 'amp', 'cuda'):  # the settings of that run, unless given again
        if getattr(args, name) is None:
            setattr(args, name, record.get(name))


def default_split(args):
    return args.split or ('train_aug' if args.type == 'masks' else 'val')


def ground_truth_dir(args, root):
    return folder_in_root(root, args.gt_dir or ('SegmentationClassAug' if args.type == 'masks' else 'SegmentationClass'))


def masks_record(args, root, split):
    """The record of a --type masks score file: the masks, ground truth and split it was computed from."""
    save_path = args.save_path or os.path.dirname(os.path.abspath(args.pred_dir))
    out = layout.mask_scores_file(save_path, args.pred_dir)
    return Record(save_path, {'split': split}, {'pred_dir': args.pred_dir, 'gt_dir': ground_truth_dir(args, root),
                                                'split_file': split_file(root, split, args.split_file)},
                  name=os.path.basename(out)[:-len('.json')] + '_record.json')


def step_done(args):
    """Whether these scores were computed already from the same inputs (run_rounds.py asks)."""
    args.test_size = args.test_size or DEFAULT_TEST_SIZE
    root = resolve_voc_root(args.root_path)
    if args.type == 'masks':
        return masks_record(args, root, default_split(args)).is_done()
    if not args.model_path:
        return False
    record = logits_record(args, default_split(args))
    return record.is_done(logits_present(record.folder)) and \
        os.path.exists(layout.scores_file(os.path.dirname(record.folder), args.type))


def logits_present(folder):
    """Whether the logits of a finished run are all still there (for Record.is_done)."""
    return lambda summary: sum(name.endswith('.npz') for name in os.listdir(folder)) == summary.get('images')


def main(args):
    root = resolve_voc_root(args.root_path)
    if args.type in ('test', 'crf') and not args.model_path:
        if args.type == 'test':
            raise SystemExit('--type test needs --model_path')
        last_test_run(args)
    args.test_size = args.test_size or DEFAULT_TEST_SIZE
    split = default_split(args)
    ids = read_split(split_file(root, split, args.split_file))
    gt_dir = ground_truth_dir(args, root)
    ctx = init_distributed(args.cuda)
    if args.type == 'masks':
        if not args.pred_dir:
            raise SystemExit('--type masks needs --pred_dir')
        record = masks_record(args, root, split)
        hist = score_masks(args.pred_dir, gt_dir, tqdm(ctx.shard(ids), desc='scoring masks', disable=not ctx.is_main))
        results = {'pseudo masks': gathered_scores(ctx, hist), 'pred_dir': args.pred_dir, 'num_images': len(ids)}
        if ctx.is_main:
            print_scores(f'pseudo masks {args.pred_dir} vs {gt_dir} ({len(ids)} images)', results['pseudo masks'])
            out = layout.mask_scores_file(record.folder, args.pred_dir)
            write_json(out, results)
            record.write('done', {'images': len(ids)})
            print(f'\nwrote {out}')
        return results

    precision = Precision(args.amp, ctx.device)
    record = logits_record(args, split)
    save_path, logits_dir = os.path.dirname(record.folder), record.folder
    out_dirs = {kind: layout.eval_subdir(save_path, kind) for kind in ('pred', 'crf')}

    def begin():
        remove_stale_temporaries(logits_dir)
        old = [os.path.join(logits_dir, name) for name in os.listdir(logits_dir)] if os.path.isdir(logits_dir) else []
        record.begin(bool(old), args.overwrite, what='logits', clear=lambda: remove_files(old + [
            layout.scores_file(save_path, kind) for kind in ('test', 'crf')]))
    ctx.on_main(begin)
    ctx.barrier()
    unreadable = [f for found in ctx.all_gather_objects(compute_logits(args, ctx, precision, root, ids, logits_dir))
                  for f in found]
    if ctx.is_main:
        record.write('incomplete' if unreadable else 'done', {'images': len(ids), 'failed': dict(unreadable)})
    if args.type == 'test' and ctx.is_main:
        write_json(layout.last_test_record(args.model_type), {
            'model_path': os.path.abspath(args.model_path), 'save_path': os.path.abspath(save_path), 'split': split,
            'test_size': args.test_size, 'amp': args.amp, 'cuda': args.cuda})
    backbone = get_backbone(args.model_type)
    crf_params = asdict(backbone.crf_params) if args.type == 'crf' else None
    crf_on_padded = args.match_release and backbone.pad_to_test_size
    per_image = Parallel(n_jobs=args.n_jobs if crf_params else 1)(
        delayed(evaluate_image)(root, gt_dir, image_id, logits_dir, out_dirs, crf_params, crf_on_padded)
        for image_id in tqdm(ctx.shard(ids), desc='CRF' if crf_params else 'scoring', disable=not ctx.is_main))
    scored = [hists for _, hists in per_image if isinstance(hists, dict)]
    failed = {image_id: reason for found in ctx.all_gather_objects(
        [(image_id, reason) for image_id, reason in per_image if isinstance(reason, str)]) for image_id, reason in found}
    results = {'model_path': args.model_path, 'model_type': args.model_type, 'split': split, 'num_images': len(ids),
               'num_scored': len(ids) - len(failed), 'failed': failed}
    for key in ['without CRF'] + (['with CRF'] if crf_params else []):
        hist = sum((hists[key] for hists in scored), np.zeros((len(VOC_CLASSES),) * 2, np.int64))
        results[key] = gathered_scores(ctx, hist)
        if ctx.is_main:
            print_scores(f'{args.model_type} on {split}, {key}', results[key])
    if ctx.is_main:
        out = layout.scores_file(save_path, args.type)
        write_json(out, results)
        print(f'\n{len(ids)} images: {len(ids) - len(failed)} scored, {len(failed)} failed\nwrote {out}')
    if failed:
        listing = '\n  '.join(f'{image_id}: {reason}' for image_id, reason in list(failed.items())[:10])
        raise SystemExit(f'{len(failed)} images could not be scored (the scores cover the others):\n  {listing}')
    return results


if __name__ == '__main__':
    run_script(main, get_args_parser())
