"""Scores of pseudo masks and predictions: confusion matrices against the ground truth, the foreground inside
the boxes, the report table and the JSON form of the scores."""
import os

import numpy as np
import torch

from datasets.boxes import box_mask
from datasets.constants import IGNORE_LABEL
from datasets.io import read_label
from utils.engine.errors import InputError
from utils.evaluation.metric import confusion_matrix, scores_from_confusion


def score_masks(pred_dir, gt_dir, items, num_classes):
    """The pseudo masks in pred_dir against the ground truth, over items (image_id, boxes [(class, x1, y1, x2,
    y2)]). Returns the confusion matrix and the (true positive, false positive, false negative) pixel counts of
    the foreground (any class) inside the boxes, where a box-supervised mask has to decide."""
    hist = np.zeros((num_classes,) * 2, dtype=np.int64)
    inside = np.zeros(3, dtype=np.int64)
    for image_id, boxes in items:
        pred_path = os.path.join(pred_dir, f'{image_id}.png')
        if not os.path.exists(pred_path):
            raise InputError(f'{pred_path}: no pseudo mask for image {image_id} of the split')
        gt = read_label(os.path.join(gt_dir, f'{image_id}.png'))
        pred = read_label(pred_path)
        if pred.shape != gt.shape:
            raise InputError(f'{pred_path}: size {pred.shape} differs from the ground truth {gt.shape}')
        if pred.max(initial=0) >= num_classes:
            values = sorted(int(v) for v in np.unique(pred[pred >= num_classes]))
            raise InputError(f'{pred_path}: values {values} are not classes: a mask of {num_classes} classes holds '
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
