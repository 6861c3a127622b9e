"""Inputs for pseudo-mask generation: images padded for LPG and one box mask per class."""
import math
import os

import numpy as np
import torch
from torch.utils.data import Dataset

from .constants import COCO_ID_TO_60, COCO_VOC_IDS, MEAN_BGR
from .io import chw_tensor, read_image_bgr

# LPG's hourglass halves the 1/4-size feature map 5 times: input sides must be multiples of 4 * 2**5.
LPG_SIZE_MULTIPLE = 128


def pad_size(height, width, test_size):
    """Padded (H, W): each side is test_size if it fits, else rounded up to a multiple of 128.

    The image is only ever padded, never cropped or scaled, so no box content is lost."""
    def side(length):
        if length <= test_size:
            return test_size
        return int(math.ceil(length / LPG_SIZE_MULTIPLE)) * LPG_SIZE_MULTIPLE
    return side(height), side(width)


def box_mask(boxes, height, width):
    """uint8 HxW union of boxes (x1, y1, x2, y2): rows int(y1)..int(y2), columns int(x1)..int(x2), inclusive.

    Coordinates are clipped to the array (COCO's x1 + w can reach the image width)."""
    mask = np.zeros((height, width), np.uint8)
    for x1, y1, x2, y2 in boxes:
        left, top = max(int(x1), 0), max(int(y1), 0)
        right, bottom = min(int(x2), width - 1), min(int(y2), height - 1)
        if right >= left and bottom >= top:
            mask[top:bottom + 1, left:right + 1] = 1
    return mask


def classes_in_order(boxes):
    """Class ids of [(class_id, x1, y1, x2, y2)] in order of first appearance."""
    return list(dict.fromkeys(int(box[0]) for box in boxes))


class BoxImageDataset(Dataset):
    """One image with its per-class box masks, padded for LPG.

    items: list of (image_id, image_path, boxes), boxes = [(class_id, x1, y1, x2, y2)].
    Returns a dict: image (3xHxW float, mean-subtracted BGR, zero = mean in the padding), box_masks
    (KxHxW float 0/1, one per class in order of first appearance), class_ids (long K), height and
    width (of the unpadded image), image_id."""

    def __init__(self, items, test_size):
        self.items = list(items)
        self.test_size = int(test_size)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        image_id, image_path, boxes = self.items[index]
        image = read_image_bgr(image_path) - MEAN_BGR
        height, width = image.shape[:2]
        padded_height, padded_width = pad_size(height, width, self.test_size)
        image = np.pad(image, ((0, padded_height - height), (0, padded_width - width), (0, 0)))
        class_ids = classes_in_order(boxes)
        masks = np.zeros((len(class_ids), padded_height, padded_width), np.float32)
        for k, class_id in enumerate(class_ids):
            class_boxes = [box[1:] for box in boxes if int(box[0]) == class_id]
            masks[k, :height, :width] = box_mask(class_boxes, height, width)
        return dict(image=chw_tensor(image), box_masks=torch.from_numpy(masks),
                    class_ids=torch.tensor(class_ids, dtype=torch.long),
                    height=height, width=width, image_id=image_id)


def collate_boxes(batch):
    """Identity collate: images differ in size, so a DataLoader hands back the list of sample dicts."""
    return list(batch)


def voc_box_items(voc_root, ids):
    """BoxImageDataset items for VOC ids, boxes from Annotations/ID.xml (VOC class ids 1..20)."""
    from .voc import parse_voc_xml  # imported here: voc imports coco, which imports this module
    return [(image_id, os.path.join(voc_root, 'JPEGImages', f'{image_id}.jpg'),
             parse_voc_xml(os.path.join(voc_root, 'Annotations', f'{image_id}.xml')))
            for image_id in ids]


def coco_box_items(coco_root, split='train2017', ids=None):
    """BoxImageDataset items for COCO-60 from the parseCOCO bbox json: non-VOC boxes only, classes 1..60.

    image_id is the 12-digit name; images without a non-VOC box are skipped. ids (ints or strings)
    restricts and orders the images; by default all images of the json, in its order."""
    from .coco import coco_image_id, load_bbox_annos  # imported here: coco imports this module
    annotations = load_bbox_annos(coco_root, split)
    keys = list(annotations) if ids is None else [str(int(image_id)) for image_id in ids]
    items = []
    for key in keys:
        boxes = [(COCO_ID_TO_60[int(cat)], x1, y1, x2, y2)
                 for x1, y1, x2, y2, cat in annotations.get(key, ()) if int(cat) not in COCO_VOC_IDS]
        if boxes:
            name = coco_image_id(key)
            items.append((name, os.path.join(coco_root, split, f'{name}.jpg'), boxes))
    return items
