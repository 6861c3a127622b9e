"""Helpers and data shared by the test modules (test modules never import each other).

- `run` / `run_failing`: a project script in a subprocess, as a user runs it; `cli`: its command line in-process.
- A small COCO dataset whose parseCOCO outputs are computed by hand (`write_coco`, `expected_labels`).
  pycocotools rasterises an axis-aligned polygon with integer corners (x0, y0)-(x1, y1) to columns
  x0..x1-1 and rows y0..y1-1, so rectangle polygons give exact expected masks.
- VOC XML writing (`voc_xml`, `write`).
- `parse`: a script's flags parsed as its command line parses them; `voc_root`: a small generated VOC dataset
  (modules that need another one define their own `voc_root`).
- The fault suite's data (tests/test_faults_*.py; its helpers are in tests/faults.py): `data`, a copy per test of
  small generated COCO (parsed) and VOC datasets, and `lpg_path`, a randomly initialised round-1 generator.
"""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from datasets.synthetic import make_demo_data, make_voc_like
from models import LPGNet
from utils.engine.checkpoint import save_checkpoint
from utils.engine.runtime import run_script
from utils.parseCOCO import parse_coco

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *flags, cwd=ROOT):
    """Run a project script like a user; returns its stdout (stderr included), failing loudly."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script)] + [str(f) for f in flags], cwd=cwd,
                          capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='2'))
    assert proc.returncode == 0, f'{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout + proc.stderr


class _Tee(io.StringIO):
    """A copy of what is written to a stream, passed on to it."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream

    def write(self, text):
        self.stream.write(text)
        return super().write(text)


def cli(module, *flags, monkeypatch):
    """Run a script's command line in this process (faster than a subprocess). Returns (exit status, what it
    said on the way out: the SystemExit message, or the last line written to stderr where the exit gave a status,
    as a refused flag does)."""
    monkeypatch.setattr(sys, 'argv', [module.__name__] + [str(flag) for flag in flags])
    stderr = _Tee(sys.stderr)
    try:
        with contextlib.redirect_stderr(stderr):
            run_script(module.main, module.get_args_parser())
    except SystemExit as exit_:
        if isinstance(exit_.code, int):
            lines = stderr.getvalue().strip().splitlines()
            return exit_.code, lines[-1] if lines else ''
        return 1, str(exit_.code)
    return 0, ''


def run_failing(script, *flags):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script)] + [str(f) for f in flags], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode != 0, f'{script} should have failed'
    return proc.stdout + proc.stderr


# 60-class ids by the rule "non-VOC COCO ids sorted ascending -> 1..60":
# non-VOC ids start 8, 10, 11, 13, 14, 15, 22, ... and end with 90.
TRUCK, BENCH, ELEPHANT, TOOTHBRUSH = 8, 15, 22, 90
TRUCK60, BENCH60, ELEPHANT60, TOOTHBRUSH60 = 1, 6, 7, 60
PERSON, CAR = 1, 3  # VOC classes

IMAGE_SIZES = {1: (20, 30), 2: (10, 12), 3: (16, 16), 42: (12, 12)}  # id -> (height, width)


def rect(x0, y0, x1, y1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


# Crowd mask of image 42 as uncompressed (column-major) RLE: 5 off, 3 on, 10 off, 4 on, rest off.
CROWD_COUNTS = [5, 3, 10, 4, 144 - 22]


def crowd_mask():
    flat = np.zeros(144, np.uint8)
    flat[5:8] = 1
    flat[18:22] = 1
    return flat.reshape(12, 12, order='F')


def annotations():
    """(id, image, category, bbox [x, y, w, h], segmentation, iscrowd), in file order."""
    return [
        (101, 1, ELEPHANT, [2.4, 2.7, 22.9, 12.6], [rect(2, 2, 8, 6), rect(20, 10, 25, 15)], 0),
        (102, 2, PERSON, [1, 1, 4, 4], [rect(1, 1, 5, 5)], 0),
        (103, 1, PERSON, [0, 0, 30, 20], [rect(0, 0, 30, 20)], 0),
        (104, 1, TRUCK, [5, 4, 7, 6], [rect(5, 4, 12, 10)], 0),
        (105, 1, ELEPHANT, [10, 8, 5, 4], [rect(10, 8, 15, 12)], 0),
        (106, 1, TOOTHBRUSH, [26.0, 16.0, 4.0, 4.0], [rect(26, 16, 30, 20)], 0),
        (107, 42, CAR, [0, 0, 12, 12], [rect(0, 0, 12, 12)], 0),
        (108, 42, BENCH, [0, 5, 2, 5], {'counts': CROWD_COUNTS, 'size': [12, 12]}, 1),
        (109, 42, BENCH, [8, 8, 3, 3], [rect(8, 8, 11, 11)], 0),
        (110, 2, CAR, [6, 2, 3, 3], [rect(6, 2, 9, 5)], 0),
    ]


def write_coco(root, split='train2017'):
    """Write annotations/instances_<split>.json for the dataset above; returns the path."""
    images = [{'id': image_id, 'height': h, 'width': w, 'file_name': f'{image_id:012d}.jpg'}
              for image_id, (h, w) in IMAGE_SIZES.items()]
    anns = [{'id': ann_id, 'image_id': image_id, 'category_id': cat, 'bbox': bbox, 'segmentation': seg,
             'iscrowd': crowd, 'area': float(bbox[2] * bbox[3])}
            for ann_id, image_id, cat, bbox, seg, crowd in annotations()]
    categories = [{'id': cat, 'name': str(cat), 'supercategory': 'x'}
                  for cat in (PERSON, CAR, TRUCK, BENCH, ELEPHANT, TOOTHBRUSH)]
    path = os.path.join(root, 'annotations', f'instances_{split}.json')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump({'images': images, 'annotations': anns, 'categories': categories}, f)
    return path


def expected_labels():
    """Hand-computed {image id: (bbox60, seg60)} for the images that get PNGs."""
    bbox1 = np.zeros((20, 30), np.uint8)
    bbox1[2:16, 2:26] = ELEPHANT60     # 101: x 2.4..25.3 -> cols 2..25, y 2.7..15.3 -> rows 2..15
    bbox1[4:11, 5:13] = TRUCK60        # 104: cols 5..12, rows 4..10 (overwrites 101)
    bbox1[8:13, 10:16] = ELEPHANT60    # 105: cols 10..15, rows 8..12 (overwrites 104: annotation order)
    bbox1[16:20, 26:30] = TOOTHBRUSH60  # 106: x2 = 30 = width, y2 = 20 = height -> clipped
    seg1 = np.zeros((20, 30), np.uint8)
    seg1[2:6, 2:8] = ELEPHANT60        # both parts of 101 and all of 105 first ...
    seg1[10:15, 20:25] = ELEPHANT60
    seg1[8:12, 10:15] = ELEPHANT60
    seg1[4:10, 5:12] = TRUCK60         # ... then the truck overwrites them (category order, not annotation order)
    seg1[16:20, 26:30] = TOOTHBRUSH60
    bbox42 = np.zeros((12, 12), np.uint8)
    bbox42[5:11, 0:3] = BENCH60        # 108: cols 0..2, rows 5..10
    bbox42[8:12, 8:12] = BENCH60       # 109: cols 8..11, rows 8..11
    seg42 = np.zeros((12, 12), np.uint8)
    seg42[crowd_mask() > 0] = BENCH60
    seg42[8:11, 8:11] = BENCH60
    return {1: (bbox1, seg1), 42: (bbox42, seg42)}


def read_png(path):
    with Image.open(path) as image:
        assert image.mode == 'L'
        return np.array(image)


def voc_xml(objects, width=50, height=40):
    """objects: list of (name, (xmin, ymin, xmax, ymax) or None, parts) with 1-based coordinates."""
    body = []
    for name, box, parts in objects:
        inner = f'<name>{name}</name><difficult>0</difficult>'
        if box is not None:
            inner += '<bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox>'.format(*box)
        for part_name, part_box in parts:
            inner += ('<part><name>{}</name><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax>'
                      '<ymax>{}</ymax></bndbox></part>').format(part_name, *part_box)
        body.append(f'<object>{inner}</object>')
    return (f'<annotation><folder>VOC2012</folder><filename>x.jpg</filename><size><width>{width}</width>'
            f'<height>{height}</height><depth>3</depth></size>{"".join(body)}</annotation>')


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)
    return path


PERSON_WITH_PARTS = ('person', (5, 6, 20, 30), [('head', (8, 6, 14, 12)), ('hand', (3, 20, 6, 24))])


@pytest.fixture
def coco_root(tmp_path):
    """The small COCO dataset above after parseCOCO, with random JPEG images of the listed sizes."""
    write_coco(str(tmp_path))
    parse_coco(str(tmp_path))
    rng = np.random.default_rng(0)
    os.makedirs(tmp_path / 'train2017')
    for image_id, (height, width) in IMAGE_SIZES.items():
        image = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
        cv2.imwrite(str(tmp_path / 'train2017' / f'{image_id:012d}.jpg'), image)
    return str(tmp_path)


def parse(script, *flags):
    return script.get_args_parser().parse_args([str(flag) for flag in flags])


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory):
    return make_voc_like(str(tmp_path_factory.mktemp('voc')), num_train=4, num_val=2, image_size=64, seed=5)


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    """Small generated COCO (parsed) and VOC datasets, copied per test by `data`."""
    root = tmp_path_factory.mktemp('faults')
    coco, voc = make_demo_data(str(root / 'data'), num_coco=12, num_voc_train=6, num_voc_val=3, image_size=64, seed=4)
    parse_coco(coco)
    return root / 'data'


@pytest.fixture
def data(source, tmp_path):
    shutil.copytree(source, tmp_path / 'data')
    return dict(coco=str(tmp_path / 'data' / 'coco'), voc=str(tmp_path / 'data' / 'VOCdevkit' / 'VOC2012'))


@pytest.fixture
def lpg_path(tmp_path):
    torch.manual_seed(0)
    return str(save_checkpoint(tmp_path / 'LPG_Round1.pth', **LPGNet(in_channels=4).state_dict()))


def mean_iou(pred_dir, gt_dir, ids, num_classes):
    """Mean IoU of the label PNGs in pred_dir against those in gt_dir over ids, counted here with numpy apart from
    utils/evaluation: void (255) ignored, averaged over the classes present in the ground truth."""
    hist = np.zeros((num_classes, num_classes), np.int64)
    for image_id in ids:
        with Image.open(os.path.join(gt_dir, f'{image_id}.png')) as gt_png, \
                Image.open(os.path.join(pred_dir, f'{image_id}.png')) as pred_png:
            gt, pred = np.asarray(gt_png).astype(np.int64), np.asarray(pred_png).astype(np.int64)
        valid = gt != 255
        hist += np.bincount(num_classes * gt[valid] + pred[valid], minlength=num_classes ** 2).reshape(hist.shape)
    present = hist.sum(1) > 0
    iou = np.diag(hist) / (hist.sum(0) + hist.sum(1) - np.diag(hist)).clip(min=1)
    return float(iou[present].mean())
