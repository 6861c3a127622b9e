"""Small synthetic datasets in the real on-disk formats of MS-COCO and PASCAL VOC 2012.

The one-command demo and the end-to-end tests need an auxiliary dataset with masks
(COCO format) and a target dataset with boxes (VOC format) that can be generated in
seconds. The data are designed so that a class-agnostic box -> mask generator is
learnable but not trivial, and must transfer across shape families as in the paper:
objects are saturated, textured shapes on muted, noisy backgrounds, each filling only
part of its tight box (a filled box is clearly worse than the true mask); COCO-side
shape families are convex-ish, VOC-side ones different and mostly non-convex. On each
side a class has its own shape family and hue range, so a segmentation network can
learn the classes. Both sides reproduce the quirks of the real formats.

Every image is drawn from its own generator seeded with (seed, side, index), so a
dataset is deterministic for a seed and an image does not depend on the dataset size.

Modules: `shapes` (shape families, placement, rasterisation, polygon differences),
`render` (colours, backgrounds, textures, painting, box sampling, generators),
`coco_format` (COCO side and writer), `voc_format` (VOC side and writer).
Command line: `python -m datasets.synthetic --out DIR [--num_coco N ...]`.
"""
import os

from datasets.constants import COCO_CATEGORY_NAMES

# _crowd_rle is private but re-exported: tests check the crowd RLE against pycocotools.
from .coco_format import (
    COCO_NON_VOC_USED,
    COCO_SHAPE_FAMILIES,
    COCO_VOC_USED,
    _crowd_rle,  # noqa: F401 - private, re-exported for the tests, which check the crowd RLE against pycocotools
    coco_image_ids,
    coco_like_sample,
    make_coco_like,
)
from .custom_format import AUXILIARY_CATEGORIES, TARGET_CATEGORIES, make_custom_coco
from .render import ImageSize
from .voc_format import DEFAULT_VOC_CLASSES, VOC_SHAPE_FAMILIES, make_voc_like, voc_image_ids, voc_like_sample

__all__ = [
    'AUXILIARY_CATEGORIES', 'TARGET_CATEGORIES', 'make_custom_coco', 'make_custom_data',
    'COCO_CATEGORY_NAMES', 'COCO_NON_VOC_USED', 'COCO_SHAPE_FAMILIES', 'COCO_VOC_USED', 'DEFAULT_VOC_CLASSES',
    'VOC_SHAPE_FAMILIES', 'coco_image_ids', 'coco_like_sample', 'make_coco_like', 'make_demo_data',
    'make_voc_like', 'voc_image_ids', 'voc_like_sample',
]


def make_demo_data(out_dir: str, num_coco: int = 400, num_voc_train: int = 80, num_voc_val: int = 40,
                   image_size: ImageSize = 128, seed: int = 0) -> tuple[str, str]:
    """Both datasets under out_dir: `<out_dir>/coco` and `<out_dir>/VOCdevkit/VOC2012`.
    Returns (coco_root, voc_root) where voc_root is the directory holding JPEGImages."""
    coco_root = make_coco_like(os.path.join(out_dir, 'coco'), num_coco, image_size, seed)
    voc_root = make_voc_like(os.path.join(out_dir, 'VOCdevkit'), num_voc_train, num_voc_val, image_size, seed)
    return coco_root, voc_root


def make_custom_data(out_dir: str, num_images: int = 40, image_size: ImageSize = 128,
                     seed: int = 0) -> dict[str, tuple[str, str]]:
    """An auxiliary set (masks of AUXILIARY_CATEGORIES) and a target set (boxes and masks of TARGET_CATEGORIES)
    in COCO format under out_dir/custom_aux and out_dir/custom_target. Returns {'aux': (json, image folder),
    'target': (json, image folder)}."""
    return {'aux': make_custom_coco(os.path.join(out_dir, 'custom_aux'), AUXILIARY_CATEGORIES, num_images,
                                    image_size, seed, stream=10),
            'target': make_custom_coco(os.path.join(out_dir, 'custom_target'), TARGET_CATEGORIES, num_images,
                                       image_size, seed, stream=11)}
