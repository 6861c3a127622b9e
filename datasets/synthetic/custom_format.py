"""COCO-format datasets whose categories neither VOC nor COCO has: an auxiliary set with masks and a
target set, for `--dataset custom` (the tests and the README's worked example).

The images are drawn like the VOC side (`voc_like_sample`, its shape families and colours, one per class),
then written as <root>/images/<name>.jpg and <root>/annotations.json with made-up category names and ids,
each object's visible region as a compressed RLE mask and its tight box.
"""
import json
import os
from typing import Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from datasets.constants import VOC_CLASSES

from .render import _JPEG_QUALITY, ImageSize
from .voc_format import voc_like_sample

AUXILIARY_CATEGORIES = ((501, 'gizmo'), (502, 'sprocket'), (503, 'widget'), (504, 'doohickey'))
TARGET_CATEGORIES = ((7001, 'quasar'), (7003, 'nebula'), (7002, 'pulsar'))


def make_custom_coco(root: str, categories: Sequence[tuple[int, str]], num_images: int = 40,
                     image_size: ImageSize = 128, seed: int = 0, stream: int = 10) -> tuple[str, str]:
    """Write a COCO-format dataset under root; returns (annotations json, image folder). categories:
    ((id, name), ...); stream separates the random draws of two datasets made with one seed."""
    image_dir = os.path.join(root, 'images')
    os.makedirs(image_dir, exist_ok=True)
    shape_classes = VOC_CLASSES[1:1 + len(categories)]  # each category borrows a VOC-side shape family
    images, annotations = [], []
    for index in range(num_images):
        image, objects, instance_map = voc_like_sample(index, image_size, seed, shape_classes, split_offset=stream)
        height, width = image.shape[:2]
        file_name = f'img_{index:05d}.jpg'
        cv2.imwrite(os.path.join(image_dir, file_name), image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        image_id = 100 + index
        images.append({'id': image_id, 'file_name': file_name, 'height': height, 'width': width})
        for k, obj in enumerate(objects):
            rle = mask_utils.encode(np.asfortranarray((instance_map == k + 1).astype(np.uint8)))
            x1, y1, x2, y2 = obj['box']
            category_id = categories[shape_classes.index(VOC_CLASSES[obj['class_id']])][0]
            annotations.append({'id': len(annotations) + 1, 'image_id': image_id, 'category_id': category_id,
                                'bbox': [x1, y1, x2 - x1 + 1, y2 - y1 + 1], 'area': float(mask_utils.area(rle)),
                                'iscrowd': 0, 'segmentation': {'size': rle['size'],
                                                               'counts': rle['counts'].decode('ascii')}})
    path = os.path.join(root, 'annotations.json')
    with open(path, 'w') as handle:
        json.dump({'images': images, 'annotations': annotations,
                   'categories': [{'id': cat_id, 'name': name} for cat_id, name in categories]}, handle)
    return path, image_dir
