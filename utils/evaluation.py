"""Evaluation of a segmentation backbone and of pseudo masks: logits, DenseCRF, confusion matrices, scores.

test.py drives these; they know no dataset format: images come as (image_id, image_path), ground truth as a
folder of label PNGs named <image_id>.png.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from datasets.boxes import collate_boxes
from datasets.io import BackgroundWriter, atomic_open, read_image_bgr, read_label, save_palette_png
from datasets.segmentation import TestImageDataset
from utils.crf import DenseCRF
from utils.metric import confusion_matrix, scores_from_confusion


def save_logits(path, logits, input_size, image_size):
    with atomic_open(path) as handle:
        np.savez(handle, logits=logits, input_size=np.array(input_size), image_size=np.array(image_size))


@torch.no_grad()
def compute_logits(model, items, logits_dir, pad_to, precision, batch_size, workers, writer_threads, progress=True):
    """Raw logits of the (image_id, image_path) items whose .npz is not yet in logits_dir (float32, with the
    network input size they cover and the image size). Images of one input size are batched (all of them
    when padded to pad_to); loader workers read and pad, writer threads save. Returns the (image_id, reason)
    of the images that could not be read."""
    todo = [item for item in items if not os.path.exists(os.path.join(logits_dir, f'{item[0]}.npz'))]
    if not todo:
        return []
    loader = DataLoader(TestImageDataset(todo, pad_to), batch_size=batch_size, num_workers=workers,
                        collate_fn=collate_boxes, pin_memory=precision.device.type == 'cuda')
    failed = []
    with BackgroundWriter(writer_threads) as writer:
        for samples in tqdm(loader, desc='logits', unit='batch', disable=not progress):
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


def evaluate_image(image_id, image_path, gt_dir, logits_dir, out_dirs, num_classes, crf_params, crf_on_padded=False):
    """Prediction without (and, given crf_params, with) CRF for one image. Returns (image_id, confusion
    matrices), or (image_id, reason) when the image cannot be scored: no logits (its image failed), a missing
    or unreadable ground truth, or one whose size is not the image's (never scored on a crop).

    The CRF runs on the image itself, or with crf_on_padded (the release) on the whole padded network input,
    the image padded with black, and is cropped afterwards."""
    logits_path = os.path.join(logits_dir, f'{image_id}.npz')
    if not os.path.exists(logits_path):
        return image_id, 'no logits (the image could not be read)'
    gt_path = os.path.join(gt_dir, f'{image_id}.png')
    try:
        label = read_label(gt_path)
    except (OSError, ValueError) as error:
        return image_id, str(error)
    prob, image_size = probabilities(logits_path)
    if label.shape != image_size:
        return image_id, (f'ground truth {gt_path} is {label.shape[1]}x{label.shape[0]} '
                          f'but the image is {image_size[1]}x{image_size[0]}')
    height, width = label.shape
    prediction = prob[:, :height, :width].argmax(0).astype(np.uint8)
    save_palette_png(os.path.join(out_dirs['pred'], f'{image_id}.png'), prediction)
    hists = {'without CRF': confusion_matrix(label, prediction, num_classes)}
    if crf_params is not None:
        image = read_image_bgr(image_path).astype(np.uint8)
        if crf_on_padded:
            image = np.pad(image, ((0, prob.shape[1] - height), (0, prob.shape[2] - width), (0, 0)))
        else:
            prob = np.ascontiguousarray(prob[:, :height, :width])
        refined = DenseCRF(**crf_params)(image, prob).argmax(0)[:height, :width].astype(np.uint8)
        save_palette_png(os.path.join(out_dirs['crf'], f'{image_id}.png'), refined)
        hists['with CRF'] = confusion_matrix(label, refined, num_classes)
    return image_id, hists


def score_masks(pred_dir, gt_dir, ids, num_classes):
    """Confusion matrix of the pseudo masks in pred_dir against the ground truth, over `ids`."""
    hist = np.zeros((num_classes,) * 2, dtype=np.int64)
    for image_id in ids:
        pred_path = os.path.join(pred_dir, f'{image_id}.png')
        if not os.path.exists(pred_path):
            raise SystemExit(f'{pred_path}: no pseudo mask for image {image_id} of the split')
        gt = read_label(os.path.join(gt_dir, f'{image_id}.png'))
        pred = read_label(pred_path)
        if pred.shape != gt.shape:
            raise SystemExit(f'{pred_path}: size {pred.shape} differs from the ground truth {gt.shape}')
        hist += confusion_matrix(gt, pred, num_classes)
    return hist


def to_json_scores(scores, class_names):
    """Scores with class names, NaN (class absent from the ground truth) as null."""
    clean = lambda v: None if v is None or np.isnan(v) else float(v)
    out = {key: clean(value) for key, value in scores.items() if key != 'Class IoU'}
    out['Class IoU'] = {class_names[i]: clean(v) for i, v in scores['Class IoU'].items()}
    return out


def gathered_scores(ctx, hist, class_names):
    """Scores of the confusion matrix summed over the processes (one all-reduce)."""
    return to_json_scores(scores_from_confusion(ctx.all_reduce_sum(torch.from_numpy(hist)).numpy()), class_names)


def print_scores(title, scores):
    print(f'\n{title}')
    for key in ('Pixel Accuracy', 'Mean Accuracy', 'Frequency Weighted IoU', 'Mean IoU'):
        value = scores[key]
        print(f'  {key:<24}{"n/a" if value is None else f"{100 * value:6.2f}"}')
    present = {name: v for name, v in scores['Class IoU'].items() if v is not None}
    print('  ' + '  '.join(f'{name} {100 * v:.1f}' for name, v in present.items()))
