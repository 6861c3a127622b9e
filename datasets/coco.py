"""COCO-60, the auxiliary set: COCO with its 20 VOC classes removed.

The files utils/parseCOCO.py writes (box json, bbox60/seg60 PNGs), the LPG training samples, and the item
lists of the segmentation and box datasets."""
import json
import os
from typing import Callable, Iterable, Optional, Sequence

from utils.engine.errors import InputError, MissingFile
from utils.engine.files import folder_in_root

from .boxes import BoxItem
from .constants import COCO60_IDS, COCO_CATEGORY_IDS, COCO_ID_TO_60, COCO_VOC_IDS
from .lpg_samples import LPGSampleDataset
from .segmentation import SegmentationItem
from .voc import read_split


def coco_image_id(image_id: int | str) -> str:
    """COCO image id (int or string) -> the 12-digit zero-padded file name stem."""
    try:
        return f'{int(image_id):012d}'
    except (TypeError, ValueError):
        raise InputError(f'not a COCO image id: {image_id!r}') from None


def read_coco_ids(path: str) -> list[str]:
    """A split file of COCO image ids: numbers (139 or 000000000139), one per line, read as read_split reads a
    VOC one. A line that is not a number is refused, naming the file and the line."""
    ids = read_split(path)
    bad = [image_id for image_id in ids if not image_id.isdigit()]
    if bad:
        with open(path) as handle:
            number = next(n for n, line in enumerate(handle, 1) if line.strip() == bad[0])
        raise InputError(f'{path}, line {number}: {bad[0]!r} is not a COCO image id (a number, such as 139 or '
                         '000000000139)')
    return ids


def bbox_annos_path(coco_root: str, split: str = 'train2017') -> str:
    return os.path.join(coco_root, 'annotations', f'coco_{split}_bbox_annos.json')


def seg60_dir(coco_root: str, split: str = 'train2017') -> str:
    return os.path.join(coco_root, f'{split}_seg60')


def bbox60_dir(coco_root: str, split: str = 'train2017') -> str:
    return os.path.join(coco_root, f'{split}_bbox60')


def load_bbox_annos(coco_root: str, split: str = 'train2017') -> dict[str, list[list[float]]]:
    """Read annotations/coco_<split>_bbox_annos.json: {image id string: [[x1, y1, x2, y2, cat_id], ...]}."""
    path = bbox_annos_path(coco_root, split)
    if not os.path.isfile(path):
        raise MissingFile(f'COCO box annotations not found: {path}; create them with '
                                f'`python utils/parseCOCO.py --dataRoot {coco_root} --split {split}`')
    try:
        with open(path) as annos_file:
            annotations = json.load(annos_file)
    except (OSError, ValueError) as error:
        raise InputError(f'could not read COCO box annotations {path}: {error}') from error
    if not isinstance(annotations, dict):
        raise InputError(f'{path}: expected a JSON object mapping image ids to box lists')
    known = set(COCO_CATEGORY_IDS)
    for image_id, boxes in annotations.items():
        if not isinstance(boxes, list) or any(not isinstance(box, list) or len(box) != 5 for box in boxes):
            raise InputError(f'{path}: image {image_id}: expected a list of [x1, y1, x2, y2, category_id]')
        for box in boxes:
            if box[4] not in known:
                raise InputError(f'{path}: image {image_id} has a box of unknown COCO category {box[4]!r}')
    return annotations


def non_voc_boxes(boxes: Iterable[Sequence[float]]) -> list[tuple[int, float, float, float, float]]:
    """[[x1, y1, x2, y2, coco_cat]] -> [(class60, x1, y1, x2, y2)] for the non-VOC categories, in order."""
    return [(COCO_ID_TO_60[int(cat)], x1, y1, x2, y2) for x1, y1, x2, y2, cat in boxes
            if int(cat) not in COCO_VOC_IDS]


class COCO60LPGDataset(LPGSampleDataset):
    """LPG training samples of COCO-60 (see LPGSampleDataset): the images with a <split>_seg60/ID12.png, in
    the order of the bbox json, their non-VOC boxes with classes 1..60."""

    def __init__(self, coco_root: str, split: str = 'train2017', crop_size: int = 512,
                 scales: Sequence[float] = (0.5, 0.75, 1.0, 1.25, 1.5), flip: bool = True,
                 max_images: Optional[int] = None, seed: Optional[int] = 0, round_size: Callable[[float], int] = round):
        self.coco_root, self.split = coco_root, split
        mask_dir = seg60_dir(coco_root, split)
        if not os.path.isdir(mask_dir):
            raise MissingFile(f'COCO-60 masks not found: {mask_dir}; create them with '
                                    f'`python utils/parseCOCO.py --dataRoot {coco_root} --split {split}`')
        boxes = {coco_image_id(key): non_voc_boxes(image_boxes)
                 for key, image_boxes in load_bbox_annos(coco_root, split).items()}
        image_paths = {name: os.path.join(coco_root, split, f'{name}.jpg') for name in boxes}
        super().__init__(image_paths, boxes, mask_dir, len(COCO60_IDS) + 1, bbox_annos_path(coco_root, split),
                         'COCO-60', crop_size, scales, flip, max_images, seed, round_size,
                         shown={name: str(int(name)) for name in boxes})


def coco_items(coco_root: str, ids: Iterable[int | str], label_dir: str,
               split: str = 'train2017') -> list[SegmentationItem]:
    """Items for SegmentationDataset: <split>/ID12.jpg with <label_dir>/ID12.png (label_dir absolute or under
    coco_root)."""
    directory = folder_in_root(coco_root, label_dir)
    items = []
    for image_id in ids:
        name = coco_image_id(image_id)
        items.append(SegmentationItem(name, os.path.join(coco_root, split, f'{name}.jpg'),
                                      os.path.join(directory, f'{name}.png')))
    return items


def coco_box_items(coco_root: str, split: str = 'train2017', ids: Optional[Iterable[int | str]] = None,
                   errors: Optional[list[tuple[str, str]]] = None) -> list[BoxItem]:
    """BoxImageDataset items for COCO-60 from the parseCOCO bbox json: non-VOC boxes only, classes 1..60.

    image_id is the 12-digit name; images without a non-VOC box are skipped. ids (ints or digit strings)
    restricts and orders the images; by default all images of the json, in its order. An id the json does not
    have fails: with an errors list it is collected there as (image_id, message), otherwise it raises."""
    annotations = load_bbox_annos(coco_root, split)
    keys = list(annotations) if ids is None else [str(int(image_id)) for image_id in ids]
    items = []
    for key in keys:
        if key not in annotations:
            message = f'{bbox_annos_path(coco_root, split)} has no image {key} (it is in the id list)'
            if errors is None:
                raise InputError(message)
            errors.append((coco_image_id(key), message))
            continue
        boxes = non_voc_boxes(annotations[key])
        if boxes:
            name = coco_image_id(key)
            # parseCOCO's box json declares no image size: the image is read in its stored frame, COCO's own.
            items.append(BoxItem(name, os.path.join(coco_root, split, f'{name}.jpg'), boxes))
    return items
