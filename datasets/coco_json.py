"""COCO-format instance annotations: reading and checking a json, and rasterising its boxes and masks.

Used by utils/parseCOCO.py for COCO-60 and by datasets/custom.py for any COCO-format dataset."""
import json
import os
import warnings
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from utils.engine.errors import InputError, MissingFile

from .boxes import pixel_box


class Instances:
    """A checked instances json. images: {image id: {'height', 'width', 'file_name'}} in file order;
    annotations: the annotation dicts in file order; categories: [(id, name)] in file order."""

    def __init__(self, path: str, images: dict[int, dict], annotations: list[dict],
                 categories: list[tuple[int, str]]):
        self.path, self.images, self.annotations, self.categories = path, images, annotations, categories

    def by_image(self) -> dict[int, list[dict]]:
        """{image id: [its annotations]} for the images that have annotations, in the order of "images"."""
        per_image = {image_id: [] for image_id in self.images}
        for annotation in self.annotations:
            per_image[annotation['image_id']].append(annotation)
        return {image_id: anns for image_id, anns in per_image.items() if anns}


def load_instances(path: str, known_categories: Optional[Iterable[int]] = None,
                   need_segmentation: bool = True) -> Instances:
    """Read and check a COCO instances json; every problem names the file and the entry.

    known_categories: the category ids allowed (e.g. the 80 of MS-COCO); by default those of the file's own
    "categories" list, which must then be there."""
    if not os.path.isfile(path):
        raise MissingFile(f'COCO annotation file not found: {path}')
    try:
        with open(path) as handle:
            instances = json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(f'malformed COCO annotation file {path}: {error}') from error
    needed = ('images', 'annotations') + (() if known_categories is not None else ('categories',))
    if not isinstance(instances, dict) or any(not isinstance(instances.get(key), list) for key in needed):
        raise InputError(f'malformed COCO annotation file {path}: expected a JSON object with '
                         + ', '.join(f'"{key}"' for key in needed) + ' lists')
    images = {}
    for image in instances['images']:
        try:
            image_id, entry = image['id'], {'height': int(image['height']), 'width': int(image['width']),
                                            'file_name': str(image.get('file_name', ''))}
        except (KeyError, TypeError, ValueError):
            raise InputError(f'malformed COCO annotation file {path}: image entry {image!r:.200} '
                             f'lacks an integer id, height or width') from None
        if image_id in images and images[image_id] != entry:
            raise InputError(f'malformed COCO annotation file {path}: image id {image_id} has two entries, '
                             f'{images[image_id]} and {entry}; its labels would be drawn at the size of one of them')
        if image_id in images:
            warnings.warn(f'{path}: image id {image_id} is listed twice with the same entry (used once)')
        images[image_id] = entry
    categories = []
    for category in instances.get('categories') or []:
        if not isinstance(category, dict) or 'id' not in category or 'name' not in category:
            raise InputError(f'malformed COCO annotation file {path}: category entry {category!r:.200} lacks id or '
                             'name')
        categories.append((category['id'], str(category['name'])))
    known = set(known_categories) if known_categories is not None else {cat_id for cat_id, _ in categories}
    fields = ('image_id', 'category_id', 'bbox') + (('segmentation',) if need_segmentation else ())
    for annotation in instances['annotations']:
        where = f'malformed COCO annotation file {path}: annotation {annotation.get("id")}'
        missing = [key for key in fields if key not in annotation]
        if missing:
            raise InputError(f'{where} lacks {", ".join(missing)}')
        if annotation['image_id'] not in images:
            raise InputError(f'{where} refers to image {annotation["image_id"]}, which is not in "images"')
        if annotation['category_id'] not in known:
            what = 'one of the 80 COCO categories' if known_categories is not None else 'in "categories"'
            raise InputError(f'{where} has category {annotation["category_id"]}, not {what}')
        if not isinstance(annotation['bbox'], list) or len(annotation['bbox']) != 4:
            raise InputError(f'{where} has bbox {annotation["bbox"]!r}, expected [x, y, width, height]')
    return Instances(path, images, instances['annotations'], categories)


def box_corners(annotation: Mapping) -> tuple[float, float, float, float]:
    """[x, y, w, h] -> (x1, y1, x1 + w, y1 + h), as the release's box json stores it."""
    x, y, w, h = annotation['bbox']
    return x, y, x + w, y + h


def annotation_mask(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """uint8 HxW mask of one annotation, decoded as pycocotools' COCO.annToMask does.

    Polygons are rasterised at the image's height/width from the "images" entry; crowd RLE
    (compressed or with a list of counts) is decoded with pycocotools."""
    if isinstance(segmentation, list):
        if not segmentation:
            return np.zeros((height, width), np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get('counts'), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    with warnings.catch_warnings():
        # pycocotools' decode trips NumPy 2's __array__(copy=...) deprecation; the result is unaffected
        warnings.simplefilter('ignore', DeprecationWarning)
        return mask_utils.decode(rle)


def bbox_label(boxes: Iterable[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Each (class, x1, y1, x2, y2) box filled with its class, rows int(y1)..int(y2) and columns
    int(x1)..int(x2) inclusive, later boxes overwriting earlier ones."""
    label = np.zeros((height, width), np.uint8)
    for class_id, *box in boxes:
        pixels = pixel_box(*box, height, width)  # clipped: x1 + w can reach the image width
        if pixels:
            left, top, right, bottom = pixels
            label[top:bottom + 1, left:right + 1] = class_id
    return label


def semantic_label(annotations: Sequence[Mapping], height: int, width: int, class_of: Mapping[int, int],
                   where: str) -> np.ndarray:
    """Per category in order of first appearance, all its masks painted with class_of[category];
    later categories overwrite earlier ones (the release's rule for COCO-60)."""
    label = np.zeros((height, width), np.uint8)
    for category in dict.fromkeys(annotation['category_id'] for annotation in annotations):
        union = np.zeros((height, width), bool)
        for annotation in annotations:
            if annotation['category_id'] != category:
                continue
            try:
                mask = annotation_mask(annotation['segmentation'], height, width)
            except Exception as error:  # pycocotools' own errors name neither the annotation nor the file
                raise InputError(f'{where}: annotation {annotation.get("id")} has a segmentation that cannot be '
                                 f'decoded ({type(error).__name__}: {error})') from None
            if mask.shape != (height, width):
                raise InputError(f'{where}: annotation {annotation.get("id")} decodes to a '
                                 f'{mask.shape[1]}x{mask.shape[0]} mask but the image is {width}x{height}')
            union |= mask > 0
        label[union] = class_of[category]
    return label
