"""Boxes as masks: padding for LPG, box masks, the per-image generation input, and label composition.

A leaf of the data package: it knows no dataset format. Items come from `datasets.voc.voc_box_items`,
`datasets.coco.coco_box_items` or any list of (image_id, image_path, [(class_id, x1, y1, x2, y2), ...]).
"""
import math

import numpy as np
import torch
from torch.utils.data import Dataset

from .constants import MEAN_BGR
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
    (KxHxW float 0/1, one per class in order of first appearance, or with per_box one per box in order),
    class_ids (long K), height and
    width (of the unpadded image), image_id; or, for an image that cannot be read, dict(image_id, error)."""

    def __init__(self, items, test_size, per_box=False):
        self.items = list(items)
        self.test_size = int(test_size)
        self.per_box = per_box

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        image_id, image_path, boxes = self.items[index]
        try:
            image = read_image_bgr(image_path) - MEAN_BGR
        except (OSError, ValueError) as error:
            # A batch job goes on without this image; the caller records the failure.
            return dict(image_id=image_id, error=str(error))
        height, width = image.shape[:2]
        padded_height, padded_width = pad_size(height, width, self.test_size)
        image = np.pad(image, ((0, padded_height - height), (0, padded_width - width), (0, 0)))
        if self.per_box:  # one entry per box, so that touching objects of one class stay apart
            class_ids, entries = [int(box[0]) for box in boxes], [[box[1:]] for box in boxes]
        else:
            class_ids = classes_in_order(boxes)
            entries = [[box[1:] for box in boxes if int(box[0]) == class_id] for class_id in class_ids]
        masks = np.zeros((len(class_ids), padded_height, padded_width), np.float32)
        for k, entry_boxes in enumerate(entries):
            masks[k, :height, :width] = box_mask(entry_boxes, height, width)
        return dict(image=chw_tensor(image), box_masks=torch.from_numpy(masks),
                    class_ids=torch.tensor(class_ids, dtype=torch.long),
                    height=height, width=width, image_id=image_id)


def collate_boxes(batch):
    """Identity collate: images differ in size, so a DataLoader hands back the list of sample dicts."""
    return list(batch)


def compose_label(foreground, box_masks, class_ids):
    """Paint each class's foreground inside its boxes, in order; a pixel keeps the first class that claims it.

    foreground, box_masks: (K, H, W) bool; class_ids: K ints > 0. Returns an (H, W) uint8 label map.
    """
    label = torch.zeros(foreground.shape[-2:], dtype=torch.uint8, device=foreground.device)
    for fg, box, class_id in zip(foreground, box_masks, class_ids):
        label[fg & box & (label == 0)] = int(class_id)
    return label


def filled_box_label(sample):
    """The filled-box baseline: every box pixel is foreground. Returns an (height, width) uint8 numpy label."""
    boxes = sample['box_masks'] > 0.5
    label = compose_label(boxes, boxes, sample['class_ids'].tolist())
    return label[:sample['height'], :sample['width']].numpy()
