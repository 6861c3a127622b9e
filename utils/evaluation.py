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

from datasets.boxes import box_mask, collate_boxes
from datasets.constants import IGNORE_LABEL
from datasets.io import BackgroundWriter, ImageFrame, atomic_open, read_image_bgr, read_label, save_palette_png
from datasets.segmentation import TestImageDataset
from utils.crf import DenseCRF
from utils.interrupts import INTERRUPTS, stop_if_interrupted
from utils.metric import confusion_matrix, scores_from_confusion


def save_logits(path, logits, input_size, image_size):
    with atomic_open(path) as handle:
        np.savez(handle, logits=logits, input_size=np.array(input_size), image_size=np.array(image_size))


def augmented_logits(model, images, scales=(1.0,), flip=False):
    """Test-time augmentation: the logits of the images resized by each scale (bilinear), and of their mirror
    images with flip, brought to the logit size of scale 1 (bilinear) and averaged. scales must hold 1. With
    scales (1,) and no flip: the model's logits, the release's single-scale test."""
    outputs = []
    for scale in scales:
        scaled = images if scale == 1 else F.interpolate(images, scale_factor=scale, mode='bilinear',
                                                         align_corners=False)
        outputs.append(model(scaled).float())
        if flip:
            outputs.append(model(scaled.flip(-1)).float().flip(-1))
    size = outputs[list(scales).index(1) * (2 if flip else 1)].shape[-2:]
    if len(outputs) == 1:
        return outputs[0]
    resized = [out if out.shape[-2:] == size else F.interpolate(out, size=size, mode='bilinear', align_corners=False)
               for out in outputs]
    return torch.stack(resized).mean(0)


@torch.no_grad()
def compute_logits(model, items, logits_dir, pad_to, precision, batch_size, workers, writer_threads, progress=True,
                   scales=(1.0,), flip=False):
    """Raw logits of the (image_id, image_path) items whose .npz is not yet in logits_dir (float32, with the
    network input size they cover and the image size), averaged over test-time scales and flips when asked
    (augmented_logits). Items may carry a third entry, the image's ground-truth label: the image is then read in
    its frame. Images of one input size are batched (all of them when padded to pad_to); loader workers read and
    pad, writer threads save. Returns the (image_id, reason) of the images that could not be read, and how many
    of those read carry an EXIF orientation tag."""
    todo = [item for item in items if not os.path.exists(os.path.join(logits_dir, f'{item[0]}.npz'))]
    if not todo:
        return [], 0
    loader = DataLoader(TestImageDataset(todo, pad_to), batch_size=batch_size, num_workers=workers,
                        collate_fn=collate_boxes, pin_memory=precision.device.type == 'cuda')
    failed, oriented = [], 0
    # A SIGTERM / SIGINT ends the loop after the batch in flight; the writer finishes its files on the way out.
    with INTERRUPTS.guard(), BackgroundWriter(writer_threads) as writer:
        for samples in tqdm(loader, desc='logits', unit='batch', disable=not progress):
            if INTERRUPTS.pending():
                break
            by_size = {}
            for sample in samples:
                if 'error' in sample:
                    failed.append((sample['image_id'], sample['error']))
                else:
                    oriented += sample['orientation'] != 1
                    by_size.setdefault(tuple(sample['image'].shape[-2:]), []).append(sample)
            for size, group in by_size.items():
                images = precision.prepare_input(torch.stack([sample['image'] for sample in group]))
                with precision.autocast():
                    logits = augmented_logits(model, images, scales, flip)
                for sample, image_logits in zip(group, logits.float().cpu().numpy()):
                    writer.submit(save_logits, os.path.join(logits_dir, f'{sample["image_id"]}.npz'), image_logits,
                                  size, sample['image_size'])
    stop_if_interrupted(lambda name: f'interrupted by {name}: the logits written so far are complete and kept; rerun '
                        'the same command to compute the others and score (the written ones are skipped)')
    return failed, oriented


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
    """Prediction without (and, given crf_params, with) CRF (crf_label) for one image. Returns (image_id,
    confusion matrices), or (image_id, reason) when the image cannot be scored: no logits (its image failed),
    a missing or unreadable ground truth, or one whose size is not the image's (never scored on a crop)."""
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
        refined = crf_label(prob, image_path, (height, width), crf_params, crf_on_padded)
        save_palette_png(os.path.join(out_dirs['crf'], f'{image_id}.png'), refined)
        hists['with CRF'] = confusion_matrix(label, refined, num_classes)
    return image_id, hists


def crf_label(prob, image_path, image_size, crf_params, crf_on_padded=False):
    """DenseCRF's label map of an image: on the image itself, or with crf_on_padded (the release) on the whole
    padded network input, the image padded with black, cropped afterwards."""
    height, width = image_size
    # In the frame its logits were computed in (that of its ground truth, when an EXIF tag turns the image).
    frame = ImageFrame(height, width, 'the image size stored with its logits')
    image = read_image_bgr(image_path, frame).astype(np.uint8)
    if crf_on_padded:
        image = np.pad(image, ((0, prob.shape[1] - height), (0, prob.shape[2] - width), (0, 0)))
    else:
        prob = np.ascontiguousarray(prob[:, :height, :width])
    return DenseCRF(**crf_params)(image, prob).argmax(0)[:height, :width].astype(np.uint8)


def predict_image(image_id, image_path, logits_dir, out_dir, crf_params=None, crf_on_padded=False):
    """The label map of an image without ground truth (argmax, or DenseCRF given crf_params) as a palette PNG
    in out_dir. Returns None, or (image_id, reason) when it has no logits."""
    logits_path = os.path.join(logits_dir, f'{image_id}.npz')
    if not os.path.exists(logits_path):
        return image_id, 'no logits (the image could not be read)'
    prob, (height, width) = probabilities(logits_path)
    label = prob[:, :height, :width].argmax(0).astype(np.uint8) if crf_params is None else \
        crf_label(prob, image_path, (height, width), crf_params, crf_on_padded)
    save_palette_png(os.path.join(out_dir, f'{image_id}.png'), label)
    return None


def score_masks(pred_dir, gt_dir, items, num_classes):
    """The pseudo masks in pred_dir against the ground truth, over items (image_id, boxes [(class, x1, y1, x2,
    y2)]). Returns the confusion matrix and the (true positive, false positive, false negative) pixel counts of
    the foreground (any class) inside the boxes, where a box-supervised mask has to decide."""
    hist = np.zeros((num_classes,) * 2, dtype=np.int64)
    inside = np.zeros(3, dtype=np.int64)
    for image_id, boxes in items:
        pred_path = os.path.join(pred_dir, f'{image_id}.png')
        if not os.path.exists(pred_path):
            raise SystemExit(f'{pred_path}: no pseudo mask for image {image_id} of the split')
        gt = read_label(os.path.join(gt_dir, f'{image_id}.png'))
        pred = read_label(pred_path)
        if pred.shape != gt.shape:
            raise SystemExit(f'{pred_path}: size {pred.shape} differs from the ground truth {gt.shape}')
        if pred.max(initial=0) >= num_classes:
            values = sorted(int(v) for v in np.unique(pred[pred >= num_classes]))
            raise SystemExit(f'{pred_path}: values {values} are not classes: a mask of {num_classes} classes holds '
                             f'0..{num_classes - 1} only (a pixel of another value would be counted as a class)')
        hist += confusion_matrix(gt, pred, num_classes)
        region = box_mask([box[1:] for box in boxes], *gt.shape).astype(bool) & (gt != IGNORE_LABEL)
        predicted, true = (pred > 0) & region, (gt > 0) & region
        inside += [(predicted & true).sum(), (predicted & ~true).sum(), (~predicted & true).sum()]
    return hist, inside


def box_foreground_scores(counts):
    """Precision and recall of the foreground inside the boxes, from (tp, fp, fn)."""
    tp, fp, fn = (int(v) for v in counts)
    return {'precision': tp / (tp + fp) if tp + fp else None, 'recall': tp / (tp + fn) if tp + fn else None}


def report_table(rows, class_names):
    """A Markdown table: one row per pseudo-mask folder (rows: {name: scores with 'box foreground'})."""
    percent = lambda v: '-' if v is None else f'{100 * v:.1f}'
    classes = [name for name in class_names[1:] if any(r['Class IoU'].get(name) is not None for r in rows.values())]
    header = ['pseudo masks', 'mIoU', 'pixel acc.', 'fg precision in boxes', 'fg recall in boxes'] + \
        ['background'] + classes
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for name, row in rows.items():
        cells = [name, row['Mean IoU'], row['Pixel Accuracy'], row['box foreground']['precision'],
                 row['box foreground']['recall'], row['Class IoU'].get('background')]
        cells += [row['Class IoU'].get(c) for c in classes]
        lines.append('| ' + ' | '.join([cells[0]] + [percent(v) for v in cells[1:]]) + ' |')
    return '\n'.join(lines) + '\n'


def to_json_scores(scores, class_names):
    """Scores with class names, NaN (class absent from the ground truth) as null."""
    clean = lambda v: None if v is None or np.isnan(v) else float(v)
    out = {key: clean(value) for key, value in scores.items() if key != 'Class IoU'}
    out['Class IoU'] = {class_names[i]: clean(v) for i, v in scores['Class IoU'].items()}
    return out


def gathered_scores(ctx, hist, class_names, reduce=True):
    """Scores of the confusion matrix summed over the processes (one all-reduce; reduce=False: already summed)."""
    if reduce:
        hist = ctx.all_reduce_sum(torch.from_numpy(hist)).numpy()
    return to_json_scores(scores_from_confusion(hist), class_names)


def print_scores(title, scores):
    print(f'\n{title}')
    for key in ('Pixel Accuracy', 'Mean Accuracy', 'Frequency Weighted IoU', 'Mean IoU'):
        value = scores[key]
        print(f'  {key:<24}{"n/a" if value is None else f"{100 * value:6.2f}"}')
    present = {name: v for name, v in scores['Class IoU'].items() if v is not None}
    print('  ' + '  '.join(f'{name} {100 * v:.1f}' for name, v in present.items()))
