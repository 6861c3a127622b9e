"""The loss curve a training writes beside its loss log (loss_curve.png), and several runs' curves side by side.
Drawn with PIL: no plotting library is needed."""
import csv

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .files import atomic_open


def save_figure(figure, path):
    """Write a PIL image as PNG atomically."""
    with atomic_open(path) as handle:
        figure.save(handle, format='PNG')
    return path


def read_loss_log(path):
    """(iterations, losses) of a loss_log.csv."""
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    return [int(r['iteration']) for r in rows], [float(r['loss']) for r in rows]


def training_curve(iterations, losses, title, size=(360, 220)):
    """A loss curve with its axes (iteration, loss) as a PIL image."""
    width, height = size
    left, right, top, bottom = 48, 12, 22, 30
    canvas = Image.new('RGB', size, 'white')
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    draw.text((left, 4), title, fill='black', font=font)
    draw.line([(left, top), (left, height - bottom), (width - right, height - bottom)], fill='black')
    if not iterations:
        return canvas
    x0, x1 = min(iterations), max(max(iterations), min(iterations) + 1)
    low, high = min(losses), max(losses)
    high = high if high > low else low + 1
    to_x = lambda it: left + (it - x0) / (x1 - x0) * (width - left - right)
    to_y = lambda v: top + (high - v) / (high - low) * (height - top - bottom)
    points = [(to_x(i), to_y(v)) for i, v in zip(iterations, losses) if np.isfinite(v)]
    if len(points) > 1:
        draw.line(points, fill=(31, 119, 180), width=2)
    else:
        draw.ellipse([points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2], fill=(31, 119, 180))
    for value in (low, high):
        draw.text((2, to_y(value) - 6), f'{value:.3g}', fill='black', font=font)
    for it in (x0, x1):
        draw.text((to_x(it) - 10, height - bottom + 4), str(it), fill='black', font=font)
    draw.text((width // 2 - 20, height - 14), 'iteration', fill='black', font=font)
    return canvas


def curves_figure(logs):
    """The training curves of several runs (logs: {title: loss_log.csv}) side by side."""
    curves = [training_curve(*read_loss_log(path), title) for title, path in logs.items()]
    width = sum(c.width for c in curves)
    canvas = Image.new('RGB', (width, max(c.height for c in curves)), 'white')
    x = 0
    for curve in curves:
        canvas.paste(curve, (x, 0))
        x += curve.width
    return canvas


def write_curve(csv_path, png_path, title):
    """The curve of one run's loss log, as PNG beside it."""
    return save_figure(training_curve(*read_loss_log(csv_path), title), png_path)
