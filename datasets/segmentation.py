"""The segmentation dataset backbones train and test on: (image, label map) pairs of any format."""
import os
from typing import Iterable, NamedTuple, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from utils.engine.errors import InputError

from .constants import IGNORE_LABEL, MEAN_BGR
from .io import ImageFrame, chw_tensor, decode_image, label_frame, read_image_bgr, read_label
from .transforms import ScalePadCropFlip
from .validate import UnreadableImage, find_problems, image_problems


class SegmentationItem(NamedTuple):
    """An image with its label map of class indices (backbone training; the label also declares the image's
    frame)."""
    image_id: str
    image_path: str
    label_path: str


class EvalItem(NamedTuple):
    """An image test.py evaluates a backbone on."""
    image_id: str
    image_path: str


class SegmentationSample(NamedTuple):
    """A SegmentationDataset sample: image 3xHxW float (mean-subtracted BGR), label HxW long (255 = ignore)."""
    image: torch.Tensor
    label: torch.Tensor
    image_id: str


class TestImage(NamedTuple):
    """A TestImageDataset sample: image 3xHxW float (mean-subtracted BGR, padded with zero, the mean),
    image_size (height, width) before padding, orientation: its EXIF orientation tag (1 when it has none)."""
    image: torch.Tensor
    image_size: tuple
    image_id: str
    orientation: int


class SegmentationDataset(Dataset):
    """(image, label) pairs for backbone training and evaluation.

    items: SegmentationItems (image_id, image_path, label_path), e.g. from `datasets.voc.voc_items` or
    `datasets.coco.coco_items`. augment: a `datasets.transforms.ScalePadCropFlip` or None. num_classes: the
    label values allowed besides 255, for `problems`.
    Returns a SegmentationSample."""
    what = 'training'  # how the data check names its images

    def __init__(self, items: Iterable[SegmentationItem | tuple[str, str, str]],
                 augment: Optional[ScalePadCropFlip] = None, num_classes: Optional[int] = None):
        self.items = [SegmentationItem(*item) for item in items]
        self.augment = augment
        self.num_classes = num_classes

    def __len__(self) -> int:
        return len(self.items)

    def num_images(self) -> int:
        return len(self.items)

    def problems(self, progress: bool = True, tagged: Optional[list[str]] = None) -> dict[str, list[str]]:
        """{image_id: [problems]} of the pairs whose image or label is missing, undecodable, truncated, of
        another size, or holds values that are no class; tagged (a list) collects the paths of the images that
        carry an EXIF orientation tag."""
        by_id = {item.image_id: item for item in self.items}
        check = lambda image_id: image_problems(by_id[image_id].image_path, by_id[image_id].label_path,
                                                self.num_classes, tagged)
        return find_problems(list(by_id), check, 'training images and labels', progress=progress)

    def drop(self, image_ids: Iterable[str]) -> None:
        image_ids = set(image_ids)
        self.items = [item for item in self.items if item.image_id not in image_ids]
        if not self.items:
            raise InputError('no training images are left')

    def __getitem__(self, index: int) -> SegmentationSample:
        image_id, image_path, label_path = self.items[index]
        label = read_label(label_path)
        # In the frame of its label: a size that contradicts it is an InputError naming both files.
        image = read_image_bgr(image_path, ImageFrame(*label.shape, f'its label {label_path}')) - MEAN_BGR
        if self.augment is not None:
            image, (label,) = self.augment(image, [label], [IGNORE_LABEL])
        return SegmentationSample(chw_tensor(image), torch.from_numpy(label.astype(np.int64)), image_id)


class TestImageDataset(Dataset):
    """Images for testing a backbone, padded (bottom/right, with the mean) to at least pad_to x pad_to when
    pad_to is given. items: EvalItems (image_id, image_path), or SegmentationItems to read each image in the
    frame of its ground-truth label when that exists. Returns a TestImage, or an UnreadableImage for an image
    that cannot be read or whose size contradicts its label."""

    def __init__(self, items: Iterable[EvalItem | SegmentationItem | tuple[str, ...]], pad_to: Optional[int] = None):
        self.items = [SegmentationItem(*item) if len(item) == 3 else EvalItem(*item) for item in items]
        self.pad_to = pad_to

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> TestImage | UnreadableImage:
        item = self.items[index]
        image_id, label_path = item.image_id, getattr(item, 'label_path', None)
        try:
            frame = label_frame(label_path) if label_path and os.path.isfile(label_path) else None
            image, orientation = decode_image(item.image_path, frame)
            image = image - MEAN_BGR
        except (OSError, ValueError) as error:
            return UnreadableImage(image_id, str(error))
        height, width = image.shape[:2]
        if self.pad_to:
            image = np.pad(image, ((0, max(self.pad_to - height, 0)), (0, max(self.pad_to - width, 0)), (0, 0)))
        return TestImage(chw_tensor(image), (height, width), image_id, orientation)
