"""The COCO side: image kinds, `coco_like_sample`, crowd RLE, categories and the
`make_coco_like` writer (train2017 JPEGs and instances_train2017.json).

COCO quirks reproduced: polygons with several parts (an object cut in two by a later,
occluding object), crowd annotations as uncompressed column-major RLE with iscrowd=1,
VOC-overlap categories (person, dog) that the COCO-60 filter must drop, an image with
only VOC-class objects and an image without annotations.
"""
import json
import os

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from datasets.constants import COCO_CATEGORY_IDS, COCO_CATEGORY_NAMES, COCO_VOC_IDS

from .render import (
    _JPEG_QUALITY,
    ImageSize,
    _as_size,
    _background,
    _class_hues,
    _image_rng,
    _paint,
    _sample_box,
    _to_uint8,
)
from .shapes import _coco_polygon_mask, _convex_difference, _place_shape, _shape_mask

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


def coco_like_sample(index: int, image_size: ImageSize = 128,
                     seed: int = 0) -> tuple[np.ndarray, list[dict], np.ndarray]:
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
        objects.append(_crowd_object(rng, height, width))
    _add_coco_objects(rng, kind, objects, height, width)
    if kind == 'split' and objects:
        _add_occluding_bar(rng, objects, height, width)
    annotations, instance_map = _paint_coco_objects(rng, canvas, objects)
    canvas += rng.normal(0, 2.5, size=canvas.shape).astype(np.float32)
    return _to_uint8(canvas), annotations, instance_map


def _crowd_object(rng: np.random.Generator, height: int, width: int) -> dict:
    """A crowd: a cluster of small shapes of one category, as one mask."""
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
    return dict(category_id=category_id, iscrowd=1, mask=crowd, convex=False)


def _add_coco_objects(rng: np.random.Generator, kind: str, objects: list[dict], height: int, width: int) -> None:
    """Place the polygon objects of an image of this kind (see _try_add_coco_object) after those in `objects`."""
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


def _paint_coco_objects(rng: np.random.Generator, canvas: np.ndarray,
                        objects: list[dict]) -> tuple[list[dict], np.ndarray]:
    """Paint the objects onto canvas in order; returns (annotations of the visible ones, instance_map)."""
    height, width = canvas.shape[:2]
    annotations, instance_map = [], np.zeros((height, width), np.int32)
    for obj in objects:
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
    return annotations, instance_map


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


def coco_image_ids(num_images: int) -> list[int]:
    """COCO ids are not contiguous; neither are ours, so index != id bugs show up."""
    return [9 + 7 * index for index in range(num_images)]


def make_coco_like(root: str, num_images: int = 400, image_size: ImageSize = 128, seed: int = 0) -> str:
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
