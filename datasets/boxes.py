"""Boxes as masks: padding for LPG, box masks, the per-image generation input, and label composition.

A leaf of the data package: it knows no dataset format. Items (BoxItem) come from `datasets.voc.voc_box_items`,
`datasets.coco.coco_box_items`, `datasets.custom.box_items` or any list of (image_id, image_path,
[(class_id, x1, y1, x2, y2), ...]).
"""
import math
from typing import Iterable, NamedTuple, Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from utils.engine.flags import MAX_SIDE, Number

from .constants import MEAN_BGR
from .io import ImageFrame, chw_tensor, decode_image
from .validate import UnreadableImage


class BoxItem(NamedTuple):
    """An image to make pseudo masks for: its id, its file, its boxes [(class_id, x1, y1, x2, y2)] (0-based,
    inclusive) and the ImageFrame its annotation declares (None when it declares none)."""
    image_id: str
    image_path: str
    boxes: list
    frame: Optional[ImageFrame] = None


class BoxImage(NamedTuple):
    """A BoxImageDataset sample: one image with its box masks, padded for LPG.

    image: 3xHxW float, mean-subtracted BGR (zero, the mean, in the padding); box_masks: KxHxW float 0/1, one
    per entry (a class, or with per_box a box); class_ids: long K, the class of each entry; entry_boxes: the
    boxes (x1, y1, x2, y2) of each entry; height, width: the unpadded image; orientation: its EXIF orientation
    tag (1 when it has none). full_size and full_entry_boxes: the image's own size and boxes when it was
    downscaled (max_side), where the masks go back to (restore_size); None otherwise."""
    image: torch.Tensor
    box_masks: torch.Tensor
    class_ids: torch.Tensor
    entry_boxes: list
    height: int
    width: int
    image_id: str
    orientation: int
    full_size: Optional[tuple] = None
    full_entry_boxes: Optional[list] = None


# LPG's hourglass halves the 1/4-size feature map 5 times: input sides must be multiples of 4 * 2**5.
LPG_SIZE_MULTIPLE = 128
# The generator's training crop must be a side it reads; a test size that is not one pads as the next (pad_size).
LPG_CROP = Number(int, low=LPG_SIZE_MULTIPLE, high=MAX_SIDE, multiple=LPG_SIZE_MULTIPLE)


def lpg_side(length: int) -> int:
    """The smallest side of 'length' or more that the generator reads: the next multiple of 128."""
    return int(math.ceil(length / LPG_SIZE_MULTIPLE)) * LPG_SIZE_MULTIPLE


def pad_size(height: int, width: int, test_size: int) -> tuple[int, int]:
    """Padded (H, W): each side is test_size if it fits, else the image's side, rounded up to a multiple of 128
    (a test size that is not a multiple of 128, e.g. 320, pads as the next one, 384).

    The image is only ever padded, never cropped or scaled, so no box content is lost."""
    return lpg_side(max(height, test_size)), lpg_side(max(width, test_size))


def pixel_box(x1: float, y1: float, x2: float, y2: float, height: int,
              width: int) -> Optional[tuple[int, int, int, int]]:
    """The pixels a box (x1, y1, x2, y2) covers in an HxW array: (left, top, right, bottom), rows int(y1)..int(y2)
    and columns int(x1)..int(x2) inclusive, clipped to the array (COCO's x1 + w can reach the image width, and
    numpy would wrap a negative index); None when no pixel is left."""
    left, top = max(int(x1), 0), max(int(y1), 0)
    right, bottom = min(int(x2), width - 1), min(int(y2), height - 1)
    return (left, top, right, bottom) if right >= left and bottom >= top else None


def box_mask(boxes: Iterable[Sequence[float]], height: int, width: int) -> np.ndarray:
    """uint8 HxW union of boxes (x1, y1, x2, y2), each covering its pixel_box."""
    mask = np.zeros((height, width), np.uint8)
    for box in boxes:
        pixels = pixel_box(*box, height, width)
        if pixels:
            left, top, right, bottom = pixels
            mask[top:bottom + 1, left:right + 1] = 1
    return mask


def classes_in_order(boxes: Iterable[Sequence[float]]) -> list[int]:
    """Class ids of [(class_id, x1, y1, x2, y2)] in order of first appearance."""
    return list(dict.fromkeys(int(box[0]) for box in boxes))


def box_entries(boxes: Sequence[Sequence[float]],
                per_box: bool = False) -> tuple[list[int], list[list[tuple[float, ...]]]]:
    """What a mask is made for: one entry per class in order of first appearance, with all its boxes, or with
    per_box one entry per box. Returns (class ids, [[(x1, y1, x2, y2), ...] per entry])."""
    if per_box:  # touching objects of one class stay apart
        return [int(box[0]) for box in boxes], [[tuple(box[1:])] for box in boxes]
    class_ids = classes_in_order(boxes)
    return class_ids, [[tuple(box[1:]) for box in boxes if int(box[0]) == class_id] for class_id in class_ids]


class BoxImageDataset(Dataset):
    """One image with its per-class box masks, padded for LPG.

    items: BoxItems (or (image_id, image_path, boxes) tuples), boxes = [(class_id, x1, y1, x2, y2)]; each image
    is decoded in the frame its item declares.
    Returns a BoxImage (entries: one per class in order of first appearance, or with per_box one per box in
    order), or an UnreadableImage for an image that cannot be read or whose size contradicts its annotation."""

    def __init__(self, items: Iterable[BoxItem | tuple], test_size: int, per_box: bool = False,
                 max_side: Optional[int] = None):
        self.items = [BoxItem(*item) for item in items]
        self.test_size = int(test_size)
        self.per_box = per_box
        self.max_side = max_side

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> BoxImage | UnreadableImage:
        image_id, image_path, boxes, frame = self.items[index]
        try:
            image, orientation = decode_image(image_path, frame)
            image = image - MEAN_BGR
        except (OSError, ValueError) as error:
            # A batch job goes on without this image; the caller records the failure.
            return UnreadableImage(image_id, str(error))
        full_size = image.shape[:2]
        class_ids, full_entries = box_entries(boxes, self.per_box)
        image, entries = downscaled(image, full_entries, self.max_side)
        height, width = image.shape[:2]
        padded_height, padded_width = pad_size(height, width, self.test_size)
        image = np.pad(image, ((0, padded_height - height), (0, padded_width - width), (0, 0)))
        masks = np.zeros((len(class_ids), padded_height, padded_width), np.float32)
        for k, entry_boxes in enumerate(entries):
            masks[k, :height, :width] = box_mask(entry_boxes, height, width)
        downscaled_from = (full_size, full_entries) if (height, width) != full_size else (None, None)
        return BoxImage(chw_tensor(image), torch.from_numpy(masks), torch.tensor(class_ids, dtype=torch.long),
                        entries, height, width, image_id, orientation, *downscaled_from)


def downscaled(image: np.ndarray, entries: list[list[tuple[float, ...]]],
               max_side: Optional[int]) -> tuple[np.ndarray, list[list[tuple[float, ...]]]]:
    """The image and its entries' boxes scaled down so that the longer side is max_side (area interpolation),
    or as they are when it is not longer (or max_side is None)."""
    height, width = image.shape[:2]
    if not max_side or max(height, width) <= max_side:
        return image, entries
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    entries = [[tuple(coordinate * scale for coordinate in box) for box in entry_boxes] for entry_boxes in entries]
    return image, entries


def restore_size(sample: BoxImage, foreground: torch.Tensor,
                 scores: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, Optional[torch.Tensor], list]:
    """The (K, h, w) bool entry masks of a sample (and their scores), brought back from a downscaled sample to
    the image's own size with nearest resizing and kept inside each entry's own boxes there. Returns
    (foreground, scores, the entries' boxes at that size); a sample that was not downscaled as it is."""
    if sample.full_size is None:
        return foreground, scores, sample.entry_boxes
    foreground, scores = upscaled_inside(foreground, scores, sample.full_size, sample.full_entry_boxes)
    return foreground, scores, sample.full_entry_boxes


def upscaled_inside(foreground: torch.Tensor, scores: Optional[torch.Tensor], size: tuple[int, int],
                    boxes: list) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(K, h, w) bool entry masks made on a downscaled image (and their scores) brought to `size` with nearest
    resizing and kept inside each entry's `boxes` at that size."""
    inside = np.stack([box_mask(entry_boxes, *size) for entry_boxes in boxes]) if boxes else np.zeros((0, *size))
    inside = torch.from_numpy(inside).to(foreground.device).bool()
    nearest = lambda t: F.interpolate(t[None].float(), size=size, mode='nearest')[0]
    return (nearest(foreground) > 0.5) & inside, None if scores is None else nearest(scores)


def collate_boxes(batch: Iterable[BoxImage | UnreadableImage]) -> list[BoxImage | UnreadableImage]:
    """Identity collate: images differ in size, so a DataLoader hands back the list of samples."""
    return list(batch)
