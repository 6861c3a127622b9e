"""Small synthetic datasets in the real on-disk formats of MS-COCO and PASCAL VOC 2012.

The one-command demo and the end-to-end tests need an auxiliary dataset with masks
(COCO format) and a target dataset with boxes (VOC format) that can be generated in
seconds. The data are designed so that a class-agnostic box -> mask generator is
learnable but not trivial, and must transfer across shape families as in the paper:

- Backgrounds: muted colour gradients with low-frequency colour variation, soft
  (blurred) distractor blobs and fine noise.
- Objects: saturated, textured shapes with a soft-ish but visible edge, each filling
  only part of its tight box (a filled box is clearly worse than the true mask).
- COCO side: convex-ish families (ellipses, rotated rectangles, triangles, convex
  polygons, trapezoids, rhombi, rounded rectangles, smooth radial blobs).
  VOC side: different, mostly non-convex families (stars, crescents, rings, L-shapes,
  unions of discs, crosses, arcs, bow-ties). On each side a class has its own shape
  family and hue range, so a segmentation network can learn the classes.

COCO quirks reproduced: polygons with several parts (an object cut in two by a
later, occluding object), crowd annotations as uncompressed column-major RLE with
iscrowd=1, VOC-overlap categories (person, dog) that the COCO-60 filter must drop,
an image with only VOC-class objects and an image without annotations.
VOC quirks reproduced: 1-based integer boxes, `<part>` boxes inside `person`
objects, a 255 void band along object boundaries in SegmentationClass (not in
SegmentationClassAug), SegmentationObject instance maps.

Every image is drawn from its own generator seeded with (seed, side, index), so a
dataset is deterministic for a seed and an image does not depend on the dataset size.
"""
import argparse
import json
import os
import xml.etree.ElementTree as ET

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from datasets.constants import COCO_CATEGORY_IDS, COCO_VOC_IDS, VOC_CLASSES
from datasets.io import save_palette_png

COCO_CATEGORY_NAMES = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat',
    'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack',
    'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball',
    'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket',
    'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple',
    'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair',
    'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse',
    'remote', 'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
    'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier',
    'toothbrush',
)
_SUPERCATEGORY_BY_FIRST_ID = (  # (first id of the range, supercategory), as in COCO
    (1, 'person'), (2, 'vehicle'), (10, 'outdoor'), (16, 'animal'), (27, 'accessory'),
    (34, 'sports'), (44, 'kitchen'), (52, 'food'), (62, 'furniture'), (72, 'electronic'),
    (78, 'appliance'), (84, 'indoor'),
)

# COCO side: category id -> shape family. Non-VOC ids train the generator; the two
# VOC-overlap ids (person, dog) carry VOC-like shapes that the COCO-60 filter must drop.
COCO_SHAPE_FAMILIES = {
    8: 'rectangle', 10: 'ellipse', 11: 'triangle', 13: 'convex_polygon', 15: 'trapezoid',
    22: 'radial_blob', 23: 'rounded_rectangle', 25: 'rhombus',
    1: 'l_shape', 18: 'star',
}
COCO_NON_VOC_USED = tuple(c for c in COCO_SHAPE_FAMILIES if c not in COCO_VOC_IDS)
COCO_VOC_USED = tuple(c for c in COCO_SHAPE_FAMILIES if c in COCO_VOC_IDS)
_CONVEX_FAMILIES = frozenset({'rectangle', 'ellipse', 'triangle', 'convex_polygon', 'trapezoid',
                              'rounded_rectangle', 'rhombus'})

# VOC side: the i-th used class gets the i-th family (cycled when more than 8 classes).
VOC_SHAPE_FAMILIES = ('star', 'crescent', 'ring', 'l_shape', 'disc_union', 'cross', 'arc', 'bowtie')
DEFAULT_VOC_CLASSES = ('aeroplane', 'cat', 'dog', 'person', 'train')

_JPEG_QUALITY = 95
_POLY_SHIFT = 4  # cv2.fillPoly sub-pixel bits


# ----------------------------------------------------------------------------- shapes
def _circle(n=48, aspect=1.0):
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(angles), aspect * np.sin(angles)], axis=1)


def _unit_shape(rng, family):
    """A shape in a unit frame: (polygons to add, polygons to subtract)."""
    if family == 'ellipse':
        return [_circle(48, rng.uniform(0.35, 0.9))], []
    if family == 'rectangle':
        aspect = rng.uniform(0.3, 0.7)
        return [np.array([[-1, -aspect], [1, -aspect], [1, aspect], [-1, aspect]], float)], []
    if family == 'triangle':
        angles = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.uniform(1.3, 2.5, size=3))
        angles[2] = angles[0] + min(angles[2] - angles[0], 2 * np.pi - 0.9)
        return [np.stack([np.cos(angles), np.sin(angles)], axis=1)], []
    if family == 'convex_polygon':
        n = int(rng.integers(5, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=n))
        return [np.stack([np.cos(angles), rng.uniform(0.5, 1.0) * np.sin(angles)], axis=1)], []
    if family == 'trapezoid':
        top = rng.uniform(0.15, 0.6)
        return [np.array([[-1, 1], [1, 1], [top, -1], [-top, -1]], float)], []
    if family == 'rhombus':
        half = rng.uniform(0.35, 0.8)
        return [np.array([[0, -1], [half, 0], [0, 1], [-half, 0]], float)], []
    if family == 'rounded_rectangle':
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        cos, sin = np.cos(angles), np.sin(angles)
        x = np.sign(cos) * np.abs(cos) ** 0.5
        y = np.sign(sin) * np.abs(sin) ** 0.5 * rng.uniform(0.35, 0.7)
        return [np.stack([x, y], axis=1)], []
    if family == 'radial_blob':
        angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        radius = np.ones_like(angles)
        for freq in (2, 3, 4):
            radius += rng.uniform(0.05, 0.18) * np.cos(freq * angles + rng.uniform(0, 2 * np.pi))
        return [np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)], []
    if family == 'star':
        n = int(rng.integers(5, 8))
        angles = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
        radius = np.where(np.arange(2 * n) % 2 == 0, 1.0, rng.uniform(0.38, 0.55))
        return [np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)], []
    if family == 'crescent':
        direction = rng.uniform(0, 2 * np.pi)
        offset = rng.uniform(0.35, 0.6)
        bite = _circle(48) * rng.uniform(0.8, 0.95) + offset * np.array([np.cos(direction), np.sin(direction)])
        return [_circle(48)], [bite]
    if family == 'ring':
        aspect = rng.uniform(0.7, 1.0)
        hole = _circle(40, aspect) * rng.uniform(0.45, 0.62) + rng.uniform(-0.08, 0.08, size=2)
        return [_circle(48, aspect)], [hole]
    if family == 'l_shape':
        t = rng.uniform(0.55, 0.85)  # bar thickness in a [-1, 1] frame
        return [np.array([[-1, -1], [-1 + t, -1], [-1 + t, 1 - t], [1, 1 - t], [1, 1], [-1, 1]], float)], []
    if family == 'disc_union':
        discs, centre = [], np.zeros(2)
        radius = rng.uniform(0.5, 0.8)
        for _ in range(int(rng.integers(2, 4))):
            discs.append(_circle(32) * radius + centre)
            new_radius = rng.uniform(0.45, 0.8)
            angle = rng.uniform(0, 2 * np.pi)
            centre = centre + (radius + new_radius) * rng.uniform(0.5, 0.75) * np.array([np.cos(angle), np.sin(angle)])
            radius = new_radius
        return discs, []
    if family == 'cross':
        a, b = rng.uniform(0.22, 0.38), rng.uniform(0.22, 0.38)
        return [np.array([[-1, -a], [1, -a], [1, a], [-1, a]], float),
                np.array([[-b, -1], [b, -1], [b, 1], [-b, 1]], float)], []
    if family == 'arc':
        span = rng.uniform(np.deg2rad(200), np.deg2rad(280))
        inner = rng.uniform(0.5, 0.68)
        angles = np.linspace(0, span, 40)
        outer_arc = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        return [np.concatenate([outer_arc, inner * outer_arc[::-1]])], []
    if family == 'bowtie':
        waist = rng.uniform(0.12, 0.3)
        return [np.array([[-1, -1], [0, -waist], [1, -1], [1, 1], [0, waist], [-1, 1]], float)], []
    raise ValueError(f'unknown shape family {family!r}')


def _place_shape(rng, family, box, upright=False):
    """Rotate the unit shape, then stretch it so that its added polygons span `box`
    = (x0, y0, width, height) exactly. Coordinates follow COCO: pixel (x, y) covers [x, x+1)."""
    adds, subs = _unit_shape(rng, family)
    theta = rng.uniform(-0.35, 0.35) if upright else rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    adds = [p @ rotation.T for p in adds]
    subs = [p @ rotation.T for p in subs]
    points = np.concatenate(adds)
    low, high = points.min(0), points.max(0)
    scale = np.array(box[2:], float) / (high - low)
    offset = np.array(box[:2], float)
    return [(p - low) * scale + offset for p in adds], [(p - low) * scale + offset for p in subs]


def _fill_cv2(polygons, height, width):
    """Rasterise with cv2 (pixel centres at integer coordinates, hence the -0.5)."""
    mask = np.zeros((height, width), np.uint8)
    for polygon in polygons:
        points = np.round((polygon - 0.5) * (1 << _POLY_SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [points], 1, lineType=cv2.LINE_8, shift=_POLY_SHIFT)
    return mask


def _shape_mask(adds, subs, height, width):
    mask = _fill_cv2(adds, height, width)
    if subs:
        mask &= 1 - _fill_cv2(subs, height, width)
    return mask


def _coco_polygon_mask(polygons, height, width):
    """The mask pycocotools' COCO.annToMask gives for these polygons."""
    rles = mask_utils.frPyObjects([p.reshape(-1).tolist() for p in polygons], height, width)
    return mask_utils.decode(mask_utils.merge(rles))


def _signed_area(polygon):
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _clip_half_plane(polygon, a, b, keep_left):
    """Sutherland-Hodgman: keep the part of `polygon` left (or right) of the line a->b."""
    if len(polygon) == 0:
        return polygon
    edge, offsets = b - a, polygon - a
    side = (edge[0] * offsets[:, 1] - edge[1] * offsets[:, 0]) * (1 if keep_left else -1)
    out = []
    for i in range(len(polygon)):
        p, q = polygon[i], polygon[(i + 1) % len(polygon)]
        sp, sq = side[i], side[(i + 1) % len(polygon)]
        if sp >= 0:
            out.append(p)
        if (sp >= 0) != (sq >= 0):
            out.append(p + (q - p) * (sp / (sp - sq)))
    return np.array(out) if len(out) >= 3 else np.zeros((0, 2))


def _convex_difference(subject, cutter):
    """Exact convex pieces of subject minus cutter (both convex polygons)."""
    if _signed_area(cutter) < 0:
        cutter = cutter[::-1]
    pieces, rest = [], subject
    for i in range(len(cutter)):
        a, b = cutter[i], cutter[(i + 1) % len(cutter)]
        outside = _clip_half_plane(rest, a, b, keep_left=False)
        if len(outside) and abs(_signed_area(outside)) > 0.5:
            pieces.append(outside)
        rest = _clip_half_plane(rest, a, b, keep_left=True)
        if len(rest) == 0:
            break
    return pieces


# ----------------------------------------------------------------------------- colours
def _hsv_to_bgr(hue, saturation, value):
    hsv = np.array([[[hue % 180, saturation, value]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _lab(bgr):
    pixel = np.clip(np.asarray(bgr, np.float32).reshape(1, 1, 3) / 255.0, 0, 1)
    return cv2.cvtColor(pixel, cv2.COLOR_BGR2Lab)[0, 0]


def _class_hues(num_classes, offset):
    return [offset + index * 180.0 / num_classes for index in range(num_classes)]


def _background(rng, height, width):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    colour_a = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 90), rng.uniform(50, 225))
    colour_b = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 90), rng.uniform(50, 225))
    theta = rng.uniform(0, 2 * np.pi)
    ramp = xx * np.cos(theta) + yy * np.sin(theta)
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    image = colour_a + (colour_b - colour_a) * ramp[..., None]
    coarse = rng.normal(0, 16, size=(int(rng.integers(3, 7)), int(rng.integers(3, 7)), 3)).astype(np.float32)
    image += cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    side = min(height, width)
    for _ in range(int(rng.integers(1, 6))):  # soft distractor blobs: not objects
        blob = np.zeros((height, width), np.float32)
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(4, side // 4 + 5)), int(rng.integers(4, side // 4 + 5)))
        cv2.ellipse(blob, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        blob = cv2.GaussianBlur(blob, (0, 0), rng.uniform(2.0, 5.0))[..., None] * rng.uniform(0.4, 0.9)
        colour = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 150), rng.uniform(40, 230))
        image = image * (1 - blob) + colour * blob
    grain = rng.normal(0, rng.uniform(3, 9), size=(height, width, 3)).astype(np.float32)
    return image + cv2.GaussianBlur(grain, (0, 0), 0.8)


def _object_texture(rng, colour, texture_kind, height, width):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    along = (xx * np.cos(theta) + yy * np.sin(theta)) / max(height, width)
    texture = colour * (1 + rng.uniform(-0.2, 0.2) * (along - along.mean()))[..., None]
    if texture_kind == 1:  # stripes
        phi = rng.uniform(0, 2 * np.pi)
        period = rng.uniform(5, 9)
        stripes = np.sin(2 * np.pi * (xx * np.cos(phi) + yy * np.sin(phi)) / period)
        texture = texture + 22 * stripes[..., None]
    elif texture_kind == 2:  # speckles
        speckle = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 1.2)
        texture = texture + (25 / (speckle.std() + 1e-6)) * speckle[..., None]
    return texture + rng.normal(0, 4, size=(height, width, 3)).astype(np.float32)


def _pick_colour(rng, hue, canvas, mask, min_delta_e=30.0):
    """A saturated colour of the class's hue that stands out from what lies under the mask."""
    under = _lab(canvas[mask.astype(bool)].mean(0))
    best, best_delta = None, -1.0
    for _ in range(12):
        colour = _hsv_to_bgr(hue + rng.uniform(-7, 7), rng.uniform(150, 255), rng.uniform(90, 250))
        delta = float(np.linalg.norm(_lab(colour) - under))
        if delta >= min_delta_e:
            return colour
        if delta > best_delta:
            best, best_delta = colour, delta
    return best


def _paint(rng, canvas, mask, hue, texture_kind):
    height, width = mask.shape
    colour = _pick_colour(rng, hue, canvas, mask)
    texture = _object_texture(rng, colour, texture_kind, height, width)
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.7)[..., None]  # soft-ish edge
    canvas *= 1 - alpha
    canvas += alpha * texture


def _to_uint8(canvas):
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8)


def _sample_box(rng, height, width, allow_truncation):
    side = min(height, width)
    min_side = min(24.0, side / 3.0)
    size = rng.uniform(min_side, 0.65 * side)
    aspect = np.exp(rng.uniform(np.log(0.7), np.log(1.4)))
    box_w = float(np.clip(size * np.sqrt(aspect), min_side, 0.8 * width))
    box_h = float(np.clip(size / np.sqrt(aspect), min_side, 0.8 * height))
    if allow_truncation and rng.random() < 0.15:
        x0 = rng.uniform(-0.3 * box_w, width - 0.7 * box_w)
        y0 = rng.uniform(-0.3 * box_h, height - 0.7 * box_h)
    else:
        x0 = rng.uniform(1, width - box_w - 1)
        y0 = rng.uniform(1, height - box_h - 1)
    return (x0, y0, box_w, box_h)


def _as_size(image_size):
    if isinstance(image_size, (int, np.integer)):
        return int(image_size), int(image_size)
    height, width = image_size
    return int(height), int(width)


def _image_rng(seed, side, index):
    return np.random.default_rng([int(seed), side, int(index)])


# ----------------------------------------------------------------------------- COCO side
def _coco_hue(category_id):
    index = sorted(COCO_SHAPE_FAMILIES).index(category_id)
    return _class_hues(len(COCO_SHAPE_FAMILIES), offset=9.0)[index]


def _coco_texture(category_id):
    return sorted(COCO_SHAPE_FAMILIES).index(category_id) % 3


def _coco_image_kind(rng, index):
    # The first images guarantee every format feature even in a tiny dataset.
    fixed = {0: 'split', 1: 'voc_only', 2: 'empty', 3: 'crowd'}
    if index in fixed:
        return fixed[index]
    return rng.choice(['plain', 'split', 'crowd', 'voc_only', 'empty'], p=[0.67, 0.15, 0.1, 0.05, 0.03])


def _round_polygon(polygon):
    return np.round(polygon, 2)


def coco_like_sample(index, image_size=128, seed=0):
    """Draw COCO-like image `index`. Returns (image uint8 HxWx3 BGR, annotations, instance_map)
    where annotations are dicts with category_id, iscrowd and either 'polygons' (list of Nx2
    float arrays) or 'mask' (crowd), in painting order, and instance_map (int32 HxW) holds
    k + 1 where annotation k is visible (later annotations painted over earlier ones)."""
    height, width = _as_size(image_size)
    rng = _image_rng(seed, 0, index)
    kind = _coco_image_kind(rng, index)
    canvas = _background(rng, height, width)
    objects = []  # dicts: category_id, iscrowd, polygons (list) / mask, convex

    if kind == 'crowd':  # crowds lie on the bottom layer, as a cluster of small shapes
        category_id = int(rng.choice(COCO_NON_VOC_USED))
        centre = rng.uniform(0.3, 0.7, size=2) * (width, height)
        spread = rng.uniform(0.1, 0.2) * min(height, width)
        crowd = np.zeros((height, width), np.uint8)
        for _ in range(int(rng.integers(4, 8))):
            size = rng.uniform(5, 10)
            corner = centre + rng.normal(0, spread, size=2) - size / 2
            x0, y0 = np.clip(corner, 1, (width - size - 1, height - size - 1))
            adds, subs = _place_shape(rng, COCO_SHAPE_FAMILIES[category_id], (x0, y0, size, size))
            crowd |= _shape_mask(adds, subs, height, width)
        objects.append(dict(category_id=category_id, iscrowd=1, mask=crowd, convex=False))

    if kind == 'empty':
        num_objects = 0
    elif kind == 'split':
        num_objects = 1
    else:
        num_objects = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    for _ in range(num_objects):
        if kind == 'voc_only':
            pool = COCO_VOC_USED
        elif kind == 'split':  # the occluding bar needs a convex object to cut
            pool = [c for c in COCO_NON_VOC_USED if COCO_SHAPE_FAMILIES[c] in _CONVEX_FAMILIES]
        else:
            pool = COCO_NON_VOC_USED if rng.random() > 0.15 else COCO_VOC_USED
        category_id = int(rng.choice(pool))
        family = COCO_SHAPE_FAMILIES[category_id]
        for _attempt in range(30):
            adds, _ = _place_shape(rng, family, _sample_box(rng, height, width, False), upright=family == 'l_shape')
            adds = [_round_polygon(p) for p in adds]
            if _try_add_coco_object(objects, adds, category_id, family in _CONVEX_FAMILIES, height, width):
                break

    if kind == 'split' and objects:
        _add_occluding_bar(rng, objects, height, width)

    annotations, instance_map = [], np.zeros((height, width), np.int32)
    for number, obj in enumerate(objects, start=1):
        if obj['iscrowd']:
            mask = obj['mask']
        else:
            mask = _coco_polygon_mask(obj['polygons'], height, width)
        if mask.sum() == 0:
            continue
        _paint(rng, canvas, mask, _coco_hue(obj['category_id']), _coco_texture(obj['category_id']))
        instance_map[mask.astype(bool)] = len(annotations) + 1
        annotation = dict(category_id=obj['category_id'], iscrowd=obj['iscrowd'])
        annotation['mask' if obj['iscrowd'] else 'polygons'] = mask if obj['iscrowd'] else obj['polygons']
        annotations.append(annotation)
    canvas += rng.normal(0, 2.5, size=canvas.shape).astype(np.float32)
    return _to_uint8(canvas), annotations, instance_map


def _try_add_coco_object(objects, adds, category_id, convex, height, width, min_visible=0.6):
    """Add an object unless it would hide too much of an earlier one. Overlaps are only allowed
    between convex polygons, whose visible parts are then cut exactly into convex pieces."""
    new_mask = _coco_polygon_mask(adds, height, width)
    updates = {}
    for index, obj in enumerate(objects):
        old_mask = obj['mask'] if obj['iscrowd'] else _coco_polygon_mask(obj['polygons'], height, width)
        overlap = int((old_mask & new_mask).sum())
        if overlap == 0:
            continue
        if obj['iscrowd'] or not (convex and obj['convex']):
            return False
        pieces = [_round_polygon(q) for p in obj['polygons'] for q in _convex_difference(p, adds[0])]
        if not pieces:
            return False
        visible = _coco_polygon_mask(pieces, height, width).sum()
        if visible < min_visible * obj['full_area']:
            return False
        updates[index] = pieces
    for index, pieces in updates.items():
        objects[index]['polygons'] = pieces
    area = int(new_mask.sum())
    objects.append(dict(category_id=category_id, iscrowd=0, polygons=adds, convex=convex, full_area=area))
    return True


def _add_occluding_bar(rng, objects, height, width):
    """A thin rotated bar across the last convex object, cutting it into two polygon parts."""
    target = next((o for o in reversed(objects) if o['convex'] and not o['iscrowd']), None)
    if target is None:
        return
    points = np.concatenate(target['polygons'])
    centre = (points.min(0) + points.max(0)) / 2
    extent = float(np.max(points.max(0) - points.min(0)))
    category_id = 8  # 'rectangle' family
    for _attempt in range(30):
        theta = rng.uniform(0, np.pi)
        half_length, half_width = 0.65 * extent, rng.uniform(0.08, 0.14) * extent
        direction = np.array([np.cos(theta), np.sin(theta)])
        normal = np.array([-direction[1], direction[0]])
        bar = np.array([centre + sx * half_length * direction + sy * half_width * normal
                        for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
        if bar.min() < 0.5 or np.any(bar.max(0) > (width - 0.5, height - 0.5)):
            continue
        if _try_add_coco_object(objects, [_round_polygon(bar)], category_id, True, height, width, min_visible=0.4):
            return


def _crowd_rle(mask):
    """Uncompressed COCO RLE: run lengths over the column-major pixels, starting with zeros."""
    flat = np.asfortranarray(mask).reshape(-1, order='F').astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    boundaries = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(boundaries).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {'counts': [int(c) for c in counts], 'size': [int(mask.shape[0]), int(mask.shape[1])]}


def _coco_categories():
    categories = []
    for category_id, name in zip(COCO_CATEGORY_IDS, COCO_CATEGORY_NAMES):
        supercategory = [s for first, s in _SUPERCATEGORY_BY_FIRST_ID if first <= category_id][-1]
        categories.append({'supercategory': supercategory, 'id': category_id, 'name': name})
    return categories


def coco_image_ids(num_images):
    """COCO ids are not contiguous; neither are ours, so index != id bugs show up."""
    return [9 + 7 * index for index in range(num_images)]


def make_coco_like(root, num_images=400, image_size=128, seed=0):
    """Write `<root>/train2017/ID12.jpg` and `<root>/annotations/instances_train2017.json`.
    Returns root."""
    height, width = _as_size(image_size)
    image_dir = os.path.join(root, 'train2017')
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    images, annotations = [], []
    for index, image_id in enumerate(coco_image_ids(num_images)):
        image, objects, _ = coco_like_sample(index, (height, width), seed)
        file_name = f'{image_id:012d}.jpg'
        cv2.imwrite(os.path.join(image_dir, file_name), image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        images.append({'license': 1, 'file_name': file_name, 'height': height, 'width': width, 'id': image_id})
        for obj in objects:
            if obj['iscrowd']:
                segmentation = _crowd_rle(obj['mask'])
                rle = mask_utils.frPyObjects(segmentation, height, width)
                bbox = [float(v) for v in mask_utils.toBbox(rle)]
            else:
                segmentation = [[float(v) for v in p.reshape(-1)] for p in obj['polygons']]
                rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
                points = np.clip(np.concatenate(obj['polygons']), 0, (width, height))
                x1, y1 = points.min(0)
                x2, y2 = points.max(0)
                bbox = [round(float(x1), 2), round(float(y1), 2), round(float(x2 - x1), 2), round(float(y2 - y1), 2)]
            annotations.append({
                'segmentation': segmentation, 'area': float(mask_utils.area(rle)), 'iscrowd': int(obj['iscrowd']),
                'image_id': image_id, 'bbox': bbox, 'category_id': int(obj['category_id']),
                'id': len(annotations) + 1,
            })
    dataset = {
        'info': {'description': 'Synthetic COCO-format data for the LPG demo and tests', 'version': '1.0',
                 'year': 2017, 'contributor': 'datasets/synthetic.py', 'date_created': '2017/09/01'},
        'licenses': [{'url': 'https://example.invalid/synthetic', 'id': 1, 'name': 'synthetic'}],
        'images': images, 'annotations': annotations, 'categories': _coco_categories(),
    }
    json_path = os.path.join(root, 'annotations', 'instances_train2017.json')
    with open(json_path + '.tmp', 'w') as handle:
        json.dump(dataset, handle)
    os.replace(json_path + '.tmp', json_path)
    return root


# ----------------------------------------------------------------------------- VOC side
def voc_like_sample(index, image_size=128, seed=0, classes=DEFAULT_VOC_CLASSES, split_offset=0):
    """Draw VOC-like image `index`. Returns (image uint8 HxWx3 BGR, objects, instance_map) where
    objects are dicts with class_id, box (x1, y1, x2, y2) 0-based inclusive tight bounds of the
    visible pixels, truncated, parts (list of (name, box)), and instance_map (uint8 HxW) holds
    k + 1 where object k is visible."""
    height, width = _as_size(image_size)
    rng = _image_rng(seed, 1 + split_offset, index)
    class_ids = [VOC_CLASSES.index(name) for name in classes]
    hues = _class_hues(len(class_ids), offset=0.0)
    canvas = _background(rng, height, width)
    instance_map = np.zeros((height, width), np.uint8)
    placed = []  # (class_index, full_area)
    num_objects = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    for _ in range(num_objects):
        class_index = int(rng.integers(len(class_ids)))
        family = VOC_SHAPE_FAMILIES[class_index % len(VOC_SHAPE_FAMILIES)]
        for _attempt in range(30):
            box = _sample_box(rng, height, width, allow_truncation=True)
            adds, subs = _place_shape(rng, family, box, upright=family == 'l_shape')
            mask = _shape_mask(adds, subs, height, width)
            if mask.sum() < 150 or not _bounds_ok(mask):
                continue
            trial = instance_map.copy()
            trial[mask.astype(bool)] = len(placed) + 1
            if all(_bounds_ok(trial == k + 1) and (trial == k + 1).sum() >= 0.6 * area
                   for k, (_, area) in enumerate(placed)):
                _paint(rng, canvas, mask, hues[class_index], class_index % 3)
                instance_map = trial
                placed.append((class_index, int(mask.sum())))
                break
    canvas += rng.normal(0, 2.5, size=canvas.shape).astype(np.float32)

    objects = []
    for k, (class_index, _) in enumerate(placed):
        visible = instance_map == k + 1
        ys, xs = np.nonzero(visible)
        box = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
        truncated = int(box[0] == 0 or box[1] == 0 or box[2] == width - 1 or box[3] == height - 1)
        class_id = class_ids[class_index]
        parts = _person_parts(rng, visible, box) if VOC_CLASSES[class_id] == 'person' else []
        objects.append(dict(class_id=class_id, box=box, truncated=truncated, parts=parts))
    return _to_uint8(canvas), objects, instance_map


def _bounds_ok(mask, min_side=12):
    ys, xs = np.nonzero(mask)
    return len(xs) > 0 and xs.max() - xs.min() + 1 >= min_side and ys.max() - ys.min() + 1 >= min_side


def _person_parts(rng, visible, box):
    """Head / hand / foot boxes, like real VOC person layouts: tight boxes of the person's
    pixels in the top, right and bottom bands of its box."""
    if rng.random() < 0.3:
        return []
    x1, y1, x2, y2 = box
    box_h, box_w = y2 - y1 + 1, x2 - x1 + 1
    bands = [('head', (slice(y1, y1 + max(1, box_h // 4)), slice(x1, x2 + 1))),
             ('hand', (slice(y1 + box_h // 3, y2 + 1 - box_h // 3), slice(x2 + 1 - max(1, box_w // 4), x2 + 1))),
             ('foot', (slice(y2 + 1 - max(1, box_h // 5), y2 + 1), slice(x1, x2 + 1)))]
    parts = []
    for name, (rows, cols) in bands:
        ys, xs = np.nonzero(visible[rows, cols])
        if len(xs):
            parts.append((name, (cols.start + int(xs.min()), rows.start + int(ys.min()),
                                 cols.start + int(xs.max()), rows.start + int(ys.max()))))
    return parts


def _void_border(instance_map):
    """VOC marks object outlines as void (255): a band about 3 pixels wide."""
    border = np.zeros(instance_map.shape, bool)
    outer = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    inner = np.ones((3, 3), np.uint8)
    for k in np.unique(instance_map):
        if k == 0:
            continue
        mask = (instance_map == k).astype(np.uint8)
        border |= cv2.dilate(mask, outer).astype(bool) & ~cv2.erode(mask, inner).astype(bool)
    return border


def _sub(parent, tag, text=None):
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = str(text)
    return element


def _add_bndbox(parent, box):
    bndbox = _sub(parent, 'bndbox')
    for tag, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), box):
        _sub(bndbox, tag, value + 1)  # VOC is 1-based


def _voc_xml(image_id, height, width, objects, rng):
    """VOC2007-style files list object fields as name/pose/truncated/difficult/bndbox/part;
    2008+ files order them differently and add <occluded>: both appear here. In the 2008+
    style a person's <part> boxes come before its own <bndbox>, so a parser that searches
    all descendants for 'bndbox' instead of the direct child gets a wrong box."""
    root = ET.Element('annotation')
    _sub(root, 'folder', 'VOC2012')
    _sub(root, 'filename', f'{image_id}.jpg')
    source = _sub(root, 'source')
    year = image_id[:4]
    _sub(source, 'database', f'The VOC{year} Database')
    _sub(source, 'annotation', f'PASCAL VOC{year}')
    _sub(source, 'image', 'flickr')
    size = _sub(root, 'size')
    _sub(size, 'width', width)
    _sub(size, 'height', height)
    _sub(size, 'depth', 3)
    _sub(root, 'segmented', 1)
    classic = image_id.startswith('2007')
    for obj in objects:
        element = _sub(root, 'object')
        pose = str(rng.choice(['Unspecified', 'Left', 'Right', 'Frontal', 'Rear']))
        if classic:
            _sub(element, 'name', VOC_CLASSES[obj['class_id']])
            _sub(element, 'pose', pose)
            _sub(element, 'truncated', obj['truncated'])
            _sub(element, 'difficult', 0)
            _add_bndbox(element, obj['box'])
            for name, box in obj['parts']:
                part = _sub(element, 'part')
                _sub(part, 'name', name)
                _add_bndbox(part, box)
        else:
            _sub(element, 'name', VOC_CLASSES[obj['class_id']])
            for name, box in obj['parts']:  # a part's <bndbox> before the object's own one
                part = _sub(element, 'part')
                _sub(part, 'name', name)
                _add_bndbox(part, box)
            _add_bndbox(element, obj['box'])
            _sub(element, 'difficult', 0)
            _sub(element, 'occluded', 0)
            _sub(element, 'pose', pose)
            _sub(element, 'truncated', obj['truncated'])
    ET.indent(root, space='\t')
    return ET.tostring(root, encoding='unicode') + '\n'


def voc_image_ids(num_images, first_number=1):
    return [f'{2007 + (number % 5)}_{number:06d}' for number in range(first_number, first_number + num_images)]


def make_voc_like(root, num_train=80, num_val=40, image_size=128, seed=0, classes=DEFAULT_VOC_CLASSES):
    """Write a VOC2012-like tree under `<root>/VOC2012` (JPEGImages, Annotations,
    SegmentationClass with void borders, SegmentationClassAug without, SegmentationObject,
    ImageSets/Segmentation/{train,val,train_aug}.txt; train_aug = train). Returns `<root>/VOC2012`."""
    height, width = _as_size(image_size)
    voc_root = os.path.join(root, 'VOC2012')
    dirs = {name: os.path.join(voc_root, name) for name in
            ('JPEGImages', 'Annotations', 'SegmentationClass', 'SegmentationClassAug', 'SegmentationObject',
             'ImageSets/Segmentation')}
    for path in dirs.values():
        os.makedirs(path, exist_ok=True)
    splits = {'train': voc_image_ids(num_train, 1), 'val': voc_image_ids(num_val, 1 + num_train)}
    for split_offset, (split, ids) in enumerate(splits.items()):
        for index, image_id in enumerate(ids):
            image, objects, instance_map = voc_like_sample(index, (height, width), seed, classes, split_offset)
            cv2.imwrite(os.path.join(dirs['JPEGImages'], f'{image_id}.jpg'), image,
                        [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
            class_map = np.zeros((height, width), np.uint8)
            for k, obj in enumerate(objects):
                class_map[instance_map == k + 1] = obj['class_id']
            void = _void_border(instance_map)
            save_palette_png(os.path.join(dirs['SegmentationClassAug'], f'{image_id}.png'), class_map)
            save_palette_png(os.path.join(dirs['SegmentationClass'], f'{image_id}.png'),
                              np.where(void, 255, class_map))
            save_palette_png(os.path.join(dirs['SegmentationObject'], f'{image_id}.png'),
                              np.where(void, 255, instance_map))
            xml_rng = _image_rng(seed, 3 + split_offset, index)
            with open(os.path.join(dirs['Annotations'], f'{image_id}.xml'), 'w') as handle:
                handle.write(_voc_xml(image_id, height, width, objects, xml_rng))
    lists = {'train': splits['train'], 'val': splits['val'], 'train_aug': splits['train']}
    for split, ids in lists.items():
        with open(os.path.join(dirs['ImageSets/Segmentation'], f'{split}.txt'), 'w') as handle:
            handle.write(''.join(f'{image_id}\n' for image_id in sorted(ids)))
    return voc_root


def make_demo_data(out_dir, num_coco=400, num_voc_train=80, num_voc_val=40, image_size=128, seed=0):
    """Both datasets under out_dir: `<out_dir>/coco` and `<out_dir>/VOCdevkit/VOC2012`.
    Returns (coco_root, voc_root) where voc_root is the directory holding JPEGImages."""
    coco_root = make_coco_like(os.path.join(out_dir, 'coco'), num_coco, image_size, seed)
    voc_root = make_voc_like(os.path.join(out_dir, 'VOCdevkit'), num_voc_train, num_voc_val, image_size, seed)
    return coco_root, voc_root


def get_args_parser():
    parser = argparse.ArgumentParser(description='Generate small synthetic COCO-like and VOC-like datasets.')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--num_coco', type=int, default=400)
    parser.add_argument('--num_voc_train', type=int, default=80)
    parser.add_argument('--num_voc_val', type=int, default=40)
    parser.add_argument('--image_size', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0)
    return parser


def main(args):
    coco_root, voc_root = make_demo_data(args.out, args.num_coco, args.num_voc_train, args.num_voc_val,
                                         args.image_size, args.seed)
    with open(os.path.join(coco_root, 'annotations', 'instances_train2017.json')) as handle:
        num_annotations = len(json.load(handle)['annotations'])
    print(f'COCO-like: {coco_root}  ({args.num_coco} images, {num_annotations} annotations)')
    print(f'VOC-like:  {voc_root}  ({args.num_voc_train} train, {args.num_voc_val} val)')


if __name__ == '__main__':
    main(get_args_parser().parse_args())
