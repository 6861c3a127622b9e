"""COCO-60, the auxiliary set: COCO with its 20 VOC classes removed.

The files utils/parseCOCO.py writes (box json, bbox60/seg60 PNGs), the LPG training samples, and the item
lists of the segmentation and box datasets."""
import json
import os

import numpy as np
import torch
from torch.utils.data import Dataset

from .boxes import box_mask
from .constants import COCO60_IDS, COCO_CATEGORY_IDS, COCO_ID_TO_60, COCO_VOC_IDS, MEAN_BGR
from .io import chw_tensor, folder_in_root, read_image_bgr, read_label
from .transforms import ScalePadCropFlip, resize_labels
from .validate import find_problems, image_problems

# LPG predicts at 1/4 of its input size, so its targets are downsampled by this factor.
LPG_OUTPUT_STRIDE = 4


def coco_image_id(image_id):
    """COCO image id (int or string) -> the 12-digit zero-padded file name stem."""
    try:
        return f'{int(image_id):012d}'
    except (TypeError, ValueError):
        raise ValueError(f'not a COCO image id: {image_id!r}') from None


def bbox_annos_path(coco_root, split='train2017'):
    return os.path.join(coco_root, 'annotations', f'coco_{split}_bbox_annos.json')


def seg60_dir(coco_root, split='train2017'):
    return os.path.join(coco_root, f'{split}_seg60')


def bbox60_dir(coco_root, split='train2017'):
    return os.path.join(coco_root, f'{split}_bbox60')


def load_bbox_annos(coco_root, split='train2017'):
    """Read annotations/coco_<split>_bbox_annos.json: {image id string: [[x1, y1, x2, y2, cat_id], ...]}."""
    path = bbox_annos_path(coco_root, split)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'COCO box annotations not found: {path}; create them with '
                                f'`python utils/parseCOCO.py --dataRoot {coco_root} --split {split}`')
    try:
        with open(path) as annos_file:
            annotations = json.load(annos_file)
    except (OSError, ValueError) as error:
        raise ValueError(f'could not read COCO box annotations {path}: {error}') from error
    if not isinstance(annotations, dict):
        raise ValueError(f'{path}: expected a JSON object mapping image ids to box lists')
    known = set(COCO_CATEGORY_IDS)
    for image_id, boxes in annotations.items():
        if not isinstance(boxes, list) or any(not isinstance(box, list) or len(box) != 5 for box in boxes):
            raise ValueError(f'{path}: image {image_id}: expected a list of [x1, y1, x2, y2, category_id]')
        for box in boxes:
            if box[4] not in known:
                raise ValueError(f'{path}: image {image_id} has a box of unknown COCO category {box[4]!r}')
    return annotations


def non_voc_boxes(boxes):
    """[[x1, y1, x2, y2, coco_cat]] -> [(class60, x1, y1, x2, y2)] for the non-VOC categories, in order."""
    return [(COCO_ID_TO_60[int(cat)], x1, y1, x2, y2) for x1, y1, x2, y2, cat in boxes
            if int(cat) not in COCO_VOC_IDS]


class COCO60LPGDataset(Dataset):
    """LPG training samples: one per (image, non-VOC class present in it).

    Images are those with a <split>_seg60/ID12.png, in the order of the bbox json; max_images keeps
    the first N (trainLPG.py --max_images). round_size: see ScalePadCropFlip. Returns (image 3xSxS float, box_mask 1xSxS float 0/1,
    target (S/4)x(S/4) long 0/1, class60 int) with S = crop_size."""

    def __init__(self, coco_root, split='train2017', crop_size=512, scales=(0.5, 0.75, 1.0, 1.25, 1.5),
                 flip=True, max_images=None, seed=0, round_size=round):
        if crop_size % LPG_OUTPUT_STRIDE:
            raise ValueError(f'crop_size must be a multiple of {LPG_OUTPUT_STRIDE}, got {crop_size}')
        self.coco_root, self.split, self.crop_size = coco_root, split, int(crop_size)
        self.image_dir = os.path.join(coco_root, split)
        self.seg_dir = seg60_dir(coco_root, split)
        if not os.path.isdir(self.seg_dir):
            raise FileNotFoundError(f'COCO-60 masks not found: {self.seg_dir}; create them with '
                                    f'`python utils/parseCOCO.py --dataRoot {coco_root} --split {split}`')
        annotations = load_bbox_annos(coco_root, split)
        with_masks = set(os.listdir(self.seg_dir))

        self.boxes = {}  # image_id12 -> [(class60, x1, y1, x2, y2)]
        self.samples = []  # (image_id12, class60)
        for key, boxes in annotations.items():
            if max_images is not None and len(self.boxes) >= max_images:
                break
            name = coco_image_id(key)
            boxes = non_voc_boxes(boxes)
            if not boxes or f'{name}.png' not in with_masks:
                continue
            self.boxes[name] = boxes
            for class60 in dict.fromkeys(box[0] for box in boxes):
                self.samples.append((name, class60))
        if not self.samples:
            raise ValueError(f'no COCO-60 training samples: no image of {bbox_annos_path(coco_root, split)} '
                             f'has a non-VOC box and a mask in {self.seg_dir}')
        self.augment = ScalePadCropFlip(crop_size, scales, flip, seed=seed, round_size=round_size)

    def __len__(self):
        return len(self.samples)

    def num_images(self):
        return len(self.boxes)

    def problems(self, progress=True):
        """{image name: [problems]}: image or mask missing, undecodable or of another size, and boxes without
        area (a zero- or negative-width COCO box would give an empty or 1-pixel LPG sample)."""
        annos = bbox_annos_path(self.coco_root, self.split)
        found = {}
        for name, boxes in self.boxes.items():
            flat = [box for box in boxes if box[3] <= box[1] or box[4] <= box[2]]
            if flat:
                found[name] = [f'{annos}: image {int(name)}: box {[round(v, 2) for v in box[1:]]} of class {box[0]} '
                               'has no area' for box in flat]
        check = lambda name: image_problems(os.path.join(self.image_dir, f'{name}.jpg'),
                                            os.path.join(self.seg_dir, f'{name}.png'), num_classes=len(COCO60_IDS) + 1)
        for name, problems in find_problems(list(self.boxes), check, 'COCO-60 images', progress=progress).items():
            found.setdefault(name, []).extend(problems)
        return found

    def drop(self, names):
        """Leave out the samples of these images."""
        names = set(names)
        self.samples = [sample for sample in self.samples if sample[0] not in names]
        self.boxes = {name: boxes for name, boxes in self.boxes.items() if name not in names}
        if not self.samples:
            raise ValueError('no COCO-60 training samples are left')

    def __getitem__(self, index):
        name, class60 = self.samples[index]
        image_path = os.path.join(self.image_dir, f'{name}.jpg')
        seg_path = os.path.join(self.seg_dir, f'{name}.png')
        image = read_image_bgr(image_path) - MEAN_BGR
        seg60 = read_label(seg_path)
        height, width = image.shape[:2]
        if seg60.shape != (height, width):
            raise ValueError(f'mask {seg_path} is {seg60.shape[1]}x{seg60.shape[0]} but image '
                             f'{image_path} is {width}x{height}')
        target = (seg60 == class60).astype(np.uint8)
        class_boxes = [box[1:] for box in self.boxes[name] if box[0] == class60]
        class_box_mask = box_mask(class_boxes, height, width)
        # The crop must show part of this class's boxes; one random box guarantees an actual box
        # (the union's bounding box alone could fall between two boxes).
        overlap_box = class_boxes[int(self.augment.rng.integers(len(class_boxes)))]
        image, (class_box_mask, target) = self.augment(image, [class_box_mask, target], [0, 0], overlap_box)
        # Downsampled to the generator's output size with the same centre-sampling nearest resize as the
        # backbones' loss labels.
        target_size = self.crop_size // LPG_OUTPUT_STRIDE
        target = resize_labels(torch.from_numpy(target.astype(np.int64)), (target_size, target_size))
        return chw_tensor(image), torch.from_numpy(class_box_mask.astype(np.float32))[None], target, int(class60)


def coco_items(coco_root, ids, label_dir, split='train2017'):
    """Items for SegmentationDataset: <split>/ID12.jpg with <label_dir>/ID12.png (label_dir absolute or under coco_root)."""
    directory = folder_in_root(coco_root, label_dir)
    items = []
    for image_id in ids:
        name = coco_image_id(image_id)
        items.append((name, os.path.join(coco_root, split, f'{name}.jpg'), os.path.join(directory, f'{name}.png')))
    return items


def coco_box_items(coco_root, split='train2017', ids=None):
    """BoxImageDataset items for COCO-60 from the parseCOCO bbox json: non-VOC boxes only, classes 1..60.

    image_id is the 12-digit name; images without a non-VOC box are skipped. ids (ints or strings)
    restricts and orders the images; by default all images of the json, in its order."""
    annotations = load_bbox_annos(coco_root, split)
    keys = list(annotations) if ids is None else [str(int(image_id)) for image_id in ids]
    items = []
    for key in keys:
        boxes = non_voc_boxes(annotations.get(key, ()))
        if boxes:
            name = coco_image_id(key)
            items.append((name, os.path.join(coco_root, split, f'{name}.jpg'), boxes))
    return items
