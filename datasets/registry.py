"""The dataset registry: one entry per dataset the scripts can read, with its classes and item lists.

A script never asks "is this VOC?": it reads the entry of `--dataset`. Adding a dataset means writing
its readers and registering one `DatasetSpec`; the class count, the genPseudoMasks flags
(`--<name>_root_dir`, `--<name>_proposals_dir`, `--init_<name>_model_path`, `--<name>_test_size`,
`--<name>_split`) and main.py's `--dataset` choice follow from it.
"""
import os
from dataclasses import dataclass
from typing import Callable

from .coco import bbox_annos_path, coco_box_items, coco_image_id, coco_items
from .constants import COCO60_IDS, COCO_CATEGORY_IDS, COCO_CATEGORY_NAMES, VOC_CLASSES
from .io import folder_in_root
from .voc import read_split, resolve_voc_root, split_file, voc_box_items, voc_items


@dataclass(frozen=True)
class DatasetSpec:
    """What differs between datasets.

    name: the `--dataset` value; title: how messages and --help name it.
    classes: class names, background first; the backbone trained on the dataset has one output per class.
    default_split: the training split (VOC: a list under ImageSets/Segmentation; COCO: the image folder).
    test_size: genPseudoMasks pads every image (bottom/right) to this side, or to a multiple of 128 above it.
    box_items: (root, split, split_file, errors) -> [(image_id, image_path, [(class_id, x1, y1, x2, y2), ...])],
        the input of pseudo-mask generation; with an errors list, images whose annotation cannot be read are
        collected there as (image_id, message) instead of raising.
    box_inputs: (root, split, split_file) -> {name: path} of the files the box items come from (what a
        completion record ties the pseudo masks to).
    segmentation_items: (root, label_dir, split, split_file) -> [(image_id, image_path, label_path)],
        the input of backbone training.
    ground_truth_dirs: label folders (names under the root) that hold ground-truth masks: training on them
        is fully supervised.
    root_help: what the root folder holds, for --help.
    """
    name: str
    title: str
    classes: tuple
    default_split: str
    test_size: int
    box_items: Callable
    box_inputs: Callable
    segmentation_items: Callable
    ground_truth_dirs: tuple = ()
    root_help: str = ''

    @property
    def num_classes(self):
        return len(self.classes)


DATASETS = {}


def register_dataset(spec):
    """Add a dataset to the scripts' `--dataset` choices. Returns the spec."""
    if spec.name in DATASETS:
        raise ValueError(f'a dataset named {spec.name!r} is already registered')
    DATASETS[spec.name] = spec
    return spec


def dataset_names():
    return list(DATASETS)


def get_dataset(name):
    if name not in DATASETS:
        raise ValueError(f'unknown dataset {name!r}: expected one of {dataset_names()}')
    return DATASETS[name]


def _voc_box_items(root, split, ids_file=None, errors=None):
    root = resolve_voc_root(root)
    return voc_box_items(root, read_split(split_file(root, split, ids_file)), errors)


def _voc_box_inputs(root, split, ids_file=None):
    root = resolve_voc_root(root)
    return {'split_file': split_file(root, split, ids_file), 'annotations': os.path.join(root, 'Annotations')}


def _voc_segmentation_items(root, label_dir, split, ids_file=None):
    root = resolve_voc_root(root)
    return voc_items(root, read_split(split_file(root, split, ids_file)), label_dir)


def _coco_box_items(root, split, ids_file=None, errors=None):
    return coco_box_items(root, split, read_split(ids_file) if ids_file else None)


def _coco_box_inputs(root, split, ids_file=None):
    return {'split_file': ids_file, 'boxes': bbox_annos_path(root, split)}


def _coco_segmentation_items(root, label_dir, split, ids_file=None):
    """Every image with a mask in label_dir (pseudo masks exist only for images with non-VOC boxes),
    unless an id list is given."""
    if ids_file:
        ids = read_split(ids_file)
    else:
        directory = folder_in_root(root, label_dir)
        ids = sorted(name[:-4] for name in os.listdir(directory) if name.endswith('.png'))
    return coco_items(root, [coco_image_id(i) for i in ids], label_dir, split)


COCO60_CLASSES = ('background',) + tuple(COCO_CATEGORY_NAMES[COCO_CATEGORY_IDS.index(i)] for i in COCO60_IDS)

register_dataset(DatasetSpec(
    name='voc', title='PASCAL VOC', classes=VOC_CLASSES, default_split='train_aug', test_size=512,
    box_items=_voc_box_items, box_inputs=_voc_box_inputs, segmentation_items=_voc_segmentation_items,
    ground_truth_dirs=('SegmentationClass', 'SegmentationClassAug'),
    root_help='VOC2012 folder (with JPEGImages/, Annotations/, ImageSets/; VOCdevkit/ or its parent also work)'))

register_dataset(DatasetSpec(
    name='coco', title='COCO-60', classes=COCO60_CLASSES, default_split='train2017', test_size=640,
    box_items=_coco_box_items, box_inputs=_coco_box_inputs, segmentation_items=_coco_segmentation_items,
    ground_truth_dirs=('train2017_seg60',),
    root_help='COCO folder (with train2017/ and annotations/, after utils/parseCOCO.py)'))
