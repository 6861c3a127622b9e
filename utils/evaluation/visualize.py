"""Figures a person can open: pseudo masks of several methods side by side and prediction overlays (training
curves are in utils/engine/loss_curve.py). Built on torchvision.utils.draw_segmentation_masks /
draw_bounding_boxes and PIL (no plotting library is needed)."""
import os

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from datasets.constants import IGNORE_LABEL, VOC_PALETTE
from datasets.io import ImageFrame, read_image_bgr, read_label
from utils.engine.loss_curve import save_figure

PALETTE = np.array(VOC_PALETTE, dtype=np.uint8).reshape(-1, 3)  # RGB per class index
BORDER, TITLE = 4, 16


def _rgb_tensor(image_bgr):
    return torch.from_numpy(np.ascontiguousarray(np.asarray(image_bgr, np.uint8)[..., ::-1])).permute(2, 0, 1)


def overlay(image_bgr, label, alpha=0.55):
    """The image (HxWx3 BGR) with each class of the label map painted in its VOC colour; void (255) left
    as it is. Returns an HxWx3 RGB uint8 array."""
    label = np.asarray(label)
    classes = [c for c in np.unique(label).tolist() if c not in (0, IGNORE_LABEL)]
    image = _rgb_tensor(image_bgr)
    if classes:
        masks = torch.from_numpy(np.stack([label == c for c in classes]))
        image = draw_segmentation_masks(image, masks, alpha=alpha, colors=[tuple(PALETTE[c].tolist()) for c in classes])
    return image.permute(1, 2, 0).numpy()


def colour_label(label):
    """A label map in VOC colours (void in its palette colour): HxWx3 RGB uint8."""
    return PALETTE[np.asarray(label)]


def _with_boxes(image_bgr, boxes):
    image = _rgb_tensor(image_bgr)
    if boxes:
        xyxy = torch.tensor([box[1:] for box in boxes], dtype=torch.float)
        image = draw_bounding_boxes(image, xyxy, colors=[tuple(PALETTE[int(box[0])].tolist()) for box in boxes],
                                    width=2)
    return image.permute(1, 2, 0).numpy()


def _wrapped(title, width, draw, font):
    """The title's words in lines no wider than width pixels (a word longer than that has a line of its own)."""
    lines = []
    for word in title.split():
        if lines and draw.textlength(f'{lines[-1]} {word}', font=font) <= width:
            lines[-1] = f'{lines[-1]} {word}'
        else:
            lines.append(word)
    return lines or ['']


def _titled_row(panels, titles):
    """Panels (HxWx3 RGB arrays of one height) side by side, each under its title, wrapped to the panel's width so
    that neighbouring titles never overlap."""
    height = max(panel.shape[0] for panel in panels)
    width = sum(panel.shape[1] + BORDER for panel in panels) + BORDER
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    lines = [_wrapped(title, panel.shape[1], measure, font) for panel, title in zip(panels, titles)]
    title_height = TITLE * max(len(title_lines) for title_lines in lines)
    canvas = Image.new('RGB', (width, height + title_height + 2 * BORDER), 'white')
    draw, x = ImageDraw.Draw(canvas), BORDER
    for panel, title_lines in zip(panels, lines):
        for k, line in enumerate(title_lines):
            draw.text((x, 2 + TITLE * k), line, fill='black', font=font)
        canvas.paste(Image.fromarray(panel), (x, title_height + BORDER))
        x += panel.shape[1] + BORDER
    return canvas


def _legend(classes, class_names, width):
    """A strip of colour swatches with the names of the classes shown."""
    canvas = Image.new('RGB', (width, TITLE + 2 * BORDER), 'white')
    draw, font, x = ImageDraw.Draw(canvas), ImageFont.load_default(), BORDER
    for c in classes:
        draw.rectangle([x, BORDER, x + 12, BORDER + 12], fill=tuple(PALETTE[c].tolist()), outline='black')
        name = class_names[c] if c < len(class_names) else str(c)
        draw.text((x + 16, BORDER), name, fill='black', font=font)
        x += 24 + int(draw.textlength(name, font=font))
    return canvas


def comparison_grid(image_bgr, boxes, masks, ground_truth, class_names):
    """One image as a row of panels: the image with its boxes, the pseudo mask of each method (masks: {name:
    label map}) and the ground truth when given, in VOC colours, with a legend of the classes shown.
    Returns a PIL image."""
    panels, titles = [_with_boxes(image_bgr, boxes)], ['image + boxes']
    for name, label in masks.items():
        panels.append(colour_label(label))
        titles.append(name)
    if ground_truth is not None:
        panels.append(colour_label(ground_truth))
        titles.append('ground truth')
    shown = sorted({c for label in list(masks.values()) + [ground_truth] if label is not None
                    for c in np.unique(label).tolist()} - {0, IGNORE_LABEL} | {int(b[0]) for b in boxes})
    row = _titled_row(panels, titles)
    legend = _legend(shown, class_names, row.width)
    figure = Image.new('RGB', (row.width, row.height + legend.height), 'white')
    figure.paste(row, (0, 0))
    figure.paste(legend, (0, row.height))
    return figure


def stack(figures):
    """Figures one above the other."""
    width = max(f.width for f in figures)
    canvas = Image.new('RGB', (width, sum(f.height for f in figures)), 'white')
    y = 0
    for figure in figures:
        canvas.paste(figure, (0, y))
        y += figure.height
    return canvas


def write_overlays(items, pred_dir, out_dir):
    """Colour overlays of predictions: for each (image_id, image_path), <out_dir>/<image_id>.png."""
    for image_id, image_path in items:
        label_path = os.path.join(pred_dir, f'{image_id}.png')
        label = read_label(label_path)
        image = read_image_bgr(image_path, ImageFrame(*label.shape, f'its prediction {label_path}'))
        save_figure(Image.fromarray(overlay(image, label)), os.path.join(out_dir, f'{image_id}.png'))
