"""The samples a generator trains on: one per (image, class present), from any auxiliary set with masks.

A leaf of the data package: `datasets.coco.COCO60LPGDataset` (COCO-60) and `datasets.custom` (any
COCO-format mask dataset) build it from their label files."""
import os
from typing import Callable, Iterable, Mapping, NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from utils.engine.errors import InputError

from .boxes import box_mask
from .constants import MEAN_BGR
from .io import ImageFrame, chw_tensor, read_image_bgr, read_label
from .transforms import ScalePadCropFlip, nearest_top_left
from .validate import find_problems, image_problems

# LPG predicts at 1/4 of its input size, so its targets are downsampled by this factor.
LPG_OUTPUT_STRIDE = 4


class LPGSample(NamedTuple):
    """One generator training sample (S = crop_size): image 3xSxS float (mean-subtracted BGR), box_mask 1xSxS
    float 0/1 (the union of the class's boxes), target (S/4)x(S/4) long 0/1 (the class's mask at the generator's
    output size), class_id. A DataLoader batch is an LPGSample of stacked tensors."""
    image: torch.Tensor
    box_mask: torch.Tensor
    target: torch.Tensor
    class_id: int


class LPGSampleDataset(Dataset):
    """LPG training samples: one per (image, class present in it).

    image_paths: {name: image file}; boxes: {name: [(class, x1, y1, x2, y2)]} in the images' order;
    mask_dir: <name>.png label maps of class indices (0 = background). Images without boxes or without a
    mask are left out; max_images keeps the first N (trainLPG.py --max_images). source: the box file, for
    messages; shown: {name: how messages show the image}. num_classes: the label values allowed, for
    `problems`. round_size: see ScalePadCropFlip.

    Target: 1 where the mask equals the sample's class. Box mask: the union of that class's boxes. Augment:
    random scale, pad bottom/right to the crop (image with the mean, masks with 0), a random crop that shows
    part of one of the class's boxes, random flip; the target is downsampled by 4 to the generator's output (the
    top-left pixel of each cell).
    Returns an LPGSample.
    """

    def __init__(self, image_paths: Mapping[str, str], boxes: Mapping[str, Sequence[Sequence[float]]], mask_dir: str,
                 num_classes: int, source: str, what: str, crop_size: int = 512,
                 scales: Sequence[float] = (0.5, 0.75, 1.0, 1.25, 1.5), flip: bool = True,
                 max_images: Optional[int] = None, seed: Optional[int] = 0, round_size: Callable[[float], int] = round,
                 shown: Optional[Mapping[str, str]] = None):
        if crop_size % LPG_OUTPUT_STRIDE:
            raise InputError(f'crop_size must be a multiple of {LPG_OUTPUT_STRIDE}, got {crop_size}')
        self.crop_size, self.mask_dir, self.num_classes = int(crop_size), mask_dir, num_classes
        self.source, self.what, self.shown = source, what, shown or {}
        with_masks = set(os.listdir(mask_dir))
        self.image_paths, self.boxes, self.samples = {}, {}, []  # samples: (name, class)
        for name, image_boxes in boxes.items():
            if max_images is not None and len(self.boxes) >= max_images:
                break
            if not image_boxes or f'{name}.png' not in with_masks:
                continue
            self.image_paths[name], self.boxes[name] = image_paths[name], image_boxes
            self.samples += [(name, class_id) for class_id in dict.fromkeys(box[0] for box in image_boxes)]
        if not self.samples:
            raise InputError(f'no {what} training samples: no image of {source} has a box and a mask in {mask_dir}')
        # Target and box mask rescaled with cv2.INTER_NEAREST, as the release's COCO LPG dataset does.
        self.augment = ScalePadCropFlip(crop_size, nearest_top_left, scales, flip, seed=seed, round_size=round_size)

    def __len__(self) -> int:
        return len(self.samples)

    def num_images(self) -> int:
        return len(self.boxes)

    def mask_path(self, name: str) -> str:
        return os.path.join(self.mask_dir, f'{name}.png')

    def problems(self, progress: bool = True, tagged: Optional[list[str]] = None) -> dict[str, list[str]]:
        """{image name: [problems]}: image or mask missing, undecodable or of another size, and boxes without
        area (a zero- or negative-width box would give an empty or 1-pixel sample); tagged (a list) collects the
        paths of the images that carry an EXIF orientation tag."""
        found = {}
        for name, boxes in self.boxes.items():
            flat = [box for box in boxes if box[3] <= box[1] or box[4] <= box[2]]
            if flat:
                found[name] = [f'{self.source}: image {self.shown.get(name, name)}: box '
                               f'{[round(v, 2) for v in box[1:]]} of class {box[0]} has no area' for box in flat]
        check = lambda name: image_problems(self.image_paths[name], self.mask_path(name), self.num_classes, tagged)
        for name, problems in find_problems(list(self.boxes), check, f'{self.what} images', progress=progress).items():
            found.setdefault(name, []).extend(problems)
        return found

    def drop(self, names: Iterable[str]) -> None:
        """Leave out the samples of these images."""
        names = set(names)
        self.samples = [sample for sample in self.samples if sample[0] not in names]
        self.boxes = {name: boxes for name, boxes in self.boxes.items() if name not in names}
        if not self.samples:
            raise InputError(f'no {self.what} training samples are left')

    def __getitem__(self, index: int) -> LPGSample:
        name, class_id = self.samples[index]
        image_path, mask_path = self.image_paths[name], self.mask_path(name)
        mask = read_label(mask_path)
        height, width = mask.shape
        # In the frame of its mask: a size that contradicts it is an InputError naming both files.
        image = read_image_bgr(image_path, ImageFrame(height, width, f'its mask {mask_path}')) - MEAN_BGR
        target = (mask == class_id).astype(np.uint8)
        class_boxes = [box[1:] for box in self.boxes[name] if box[0] == class_id]
        class_box_mask = box_mask(class_boxes, height, width)
        # The crop must show part of this class's boxes; one random box guarantees an actual box
        # (the union's bounding box alone could fall between two boxes).
        overlap_box = class_boxes[int(self.augment.rng.integers(len(class_boxes)))]
        image, (class_box_mask, target) = self.augment(image, [class_box_mask, target], [0, 0], overlap_box)
        # Downsampled to the generator's output size at the top-left pixel of each 4x4 cell (rows and columns
        # 0, 4, 8, ...), with cv2.INTER_NEAREST as the release's COCO LPG dataset does. Inference reads cell j
        # back at pixel j * (4n - 1) / (n - 1) (x4 bilinear, align_corners=True, n cells): 4j at the top-left
        # corner, drifting to 4j + 3 at the far edge.
        target_size = self.crop_size // LPG_OUTPUT_STRIDE
        target = nearest_top_left(torch.from_numpy(target.astype(np.int64)), (target_size, target_size))
        return LPGSample(chw_tensor(image), torch.from_numpy(class_box_mask.astype(np.float32))[None], target,
                         int(class_id))
