"""The VOC side: `voc_like_sample`, person parts, the void border, the annotation XML
and the `make_voc_like` writer (a VOC2012-like tree).

VOC quirks reproduced: 1-based integer boxes, `<part>` boxes inside `person` objects,
both the 2007 and the 2008+ XML field orders, a 255 void band along object boundaries
in SegmentationClass (not in SegmentationClassAug), SegmentationObject instance maps.
"""
import os
import xml.etree.ElementTree as ET
from typing import Sequence

import cv2
import numpy as np

from datasets.constants import VOC_CLASSES
from datasets.io import save_palette_png

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
from .shapes import _place_shape, _shape_mask

# VOC side: the i-th used class gets the i-th family (cycled when more than 8 classes).
VOC_SHAPE_FAMILIES = ('star', 'crescent', 'ring', 'l_shape', 'disc_union', 'cross', 'arc', 'bowtie')
DEFAULT_VOC_CLASSES = ('aeroplane', 'cat', 'dog', 'person', 'train')


def voc_like_sample(index: int, image_size: ImageSize = 128, seed: int = 0,
                    classes: Sequence[str] = DEFAULT_VOC_CLASSES,
                    split_offset: int = 0) -> tuple[np.ndarray, list[dict], np.ndarray]:
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


def voc_image_ids(num_images: int, first_number: int = 1) -> list[str]:
    return [f'{2007 + (number % 5)}_{number:06d}' for number in range(first_number, first_number + num_images)]


def make_voc_like(root: str, num_train: int = 80, num_val: int = 40, image_size: ImageSize = 128, seed: int = 0,
                  classes: Sequence[str] = DEFAULT_VOC_CLASSES) -> str:
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
