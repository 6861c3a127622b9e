"""The dataset registry: one entry per dataset the scripts can read, with its classes and item lists.

A script never asks "is this VOC?": it reads the entry of `--dataset`. Adding a dataset means writing
its readers and registering one `DatasetSpec`; the class count, the genPseudoMasks flags
(`--<name>_root_dir` or the shared `--annotations`/`--image_dir`, `--<name>_proposals_dir`,
`--init_<name>_model_path`, `--<name>_test_size`, `--<name>_split`), main.py's and test.py's `--dataset`
choices follow from it.

Every reader takes a `source`: {'root': ..., 'annotations': ..., 'image_dir': ...}, of which a dataset uses
those in its `source_flags`.
"""
import argparse
import os
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

from utils.engine.errors import InputError
from utils.engine.files import folder_in_root
from utils.engine.registry import Registry

from . import custom
from .boxes import BoxItem
from .coco import bbox_annos_path, coco_box_items, coco_image_id, coco_items, read_coco_ids
from .constants import COCO60_IDS, COCO_CATEGORY_IDS, COCO_CATEGORY_NAMES, VOC_CLASSES
from .segmentation import EvalItem, SegmentationItem
from .voc import read_split, resolve_voc_root, split_file, voc_box_items, voc_items

# What every reader takes: {'root': ..., 'annotations': ..., 'image_dir': ...}, the entries of its source_flags set.
Source = dict[str, Optional[str]]
# An errors list, or None to raise: collects (image_id, message) of the images whose annotation cannot be read.
Failures = Optional[list]


class BoxItemsReader(Protocol):
    """(source, split, split_file, errors=None) -> the box items; callers pass errors by keyword."""
    def __call__(self, source: Source, split: Optional[str], split_file: Optional[str] = None,
                 errors: Failures = None) -> list[BoxItem]: ...


InputsReader = Callable[[Source, Optional[str], Optional[str]], dict[str, Optional[str]]]
SegmentationItemsReader = Callable[[Source, str, Optional[str], Optional[str]], list[SegmentationItem]]
EvalItemsReader = Callable[[Source, Optional[str], Optional[str]], list[EvalItem]]
GroundTruthReader = Callable[[Source, Optional[str], bool, str], str]
ClassReader = Callable[[Source], tuple]


@dataclass(frozen=True)
class DatasetSpec:
    """What differs between datasets.

    name: the `--dataset` value; title: how messages and --help name it.
    classes: class names, background first; the backbone trained on the dataset has one output per class.
        None when they come from the data (class_names reads them then).
    default_split: the training split (VOC: a list under ImageSets/Segmentation; COCO: the image folder).
    test_size: genPseudoMasks pads every image (bottom/right) to this side, or to a multiple of 128 above it.
    box_items: (source, split, split_file, errors) -> [BoxItem (image_id, image_path, [(class_id, x1, y1, x2,
        y2), ...], the frame the annotation declares)], the input of pseudo-mask generation; with an errors
        list, images whose annotation cannot be read are collected there as (image_id, message) instead of
        raising.
    box_inputs: (source, split, split_file) -> {name: path} of the files the box items come from (what a
        completion record ties the pseudo masks to).
    segmentation_items: (source, label_dir, split, split_file) -> [SegmentationItem (image_id, image_path,
        label_path)], the input of backbone training.
    eval_items: (source, split, split_file) -> [EvalItem (image_id, image_path)], the images test.py evaluates;
        None when the dataset is not evaluated.
    ground_truth: (source, gt_dir, masks, scratch_dir) -> the folder of ground-truth label PNGs test.py scores
        against (masks: scoring pseudo masks rather than a backbone; scratch_dir: where to write them when they
        have to be made first).
    ground_truth_dirs: label folders (names under the root) that hold ground-truth masks: training on them
        is fully supervised.
    source_flags: the source entries the dataset reads ('root', or 'annotations' and 'image_dir').
    root_help: what the root folder holds, for --help.
    class_reader: (source) -> the class names, background first, of a dataset whose classes come from the data.
    """
    name: str
    title: str
    classes: Optional[tuple]
    default_split: Optional[str]
    test_size: int
    box_items: BoxItemsReader
    box_inputs: InputsReader
    segmentation_items: SegmentationItemsReader
    eval_items: Optional[EvalItemsReader] = None
    ground_truth: Optional[GroundTruthReader] = None
    ground_truth_dirs: tuple = ()
    source_flags: tuple = ('root',)
    root_help: str = ''
    class_reader: Optional[ClassReader] = None

    def class_names(self, source: Optional[Source] = None) -> tuple[str, ...]:
        """Class names, background first: fixed, or read from the source."""
        return self.classes if self.classes is not None else self.class_reader(source)

    @property
    def num_classes(self) -> Optional[int]:
        """The class count of a dataset with fixed classes (None when they come from the data)."""
        return None if self.classes is None else len(self.classes)

    def check_source(self, source: Source) -> None:
        """An InputError naming the missing flags when the source lacks what the dataset reads."""
        flags = {'root': '--root_path / --<dataset>_root_dir', 'annotations': '--annotations',
                 'image_dir': '--image_dir'}
        missing = [flags[key] for key in self.source_flags if not source.get(key)]
        if missing:
            raise InputError(f'--dataset {self.name} needs {" and ".join(missing)}')


DATASETS = Registry('dataset', 'dataset')


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset to the scripts' `--dataset` choices. Returns the spec."""
    return DATASETS.register(spec)


def dataset_names() -> list[str]:
    return DATASETS.names()


def get_dataset(name: str) -> DatasetSpec:
    return DATASETS.entry(name)


def add_source_args(parser: argparse.ArgumentParser, annotations_help: str) -> None:
    """--annotations and --image_dir: the source of --dataset custom (annotations_help: what the json holds)."""
    parser.add_argument('--annotations', help=f'--dataset custom: {annotations_help}')
    parser.add_argument('--image_dir', help='--dataset custom: the folder its file_name entries are relative to')


def dataset_source(name: str, root: Optional[str] = None, annotations: Optional[str] = None,
                   image_dir: Optional[str] = None) -> tuple[DatasetSpec, Source]:
    """(the entry of dataset `name`, its source), the source checked for what the dataset reads."""
    spec = get_dataset(name)
    source = dict(root=root, annotations=annotations, image_dir=image_dir)
    spec.check_source(source)
    return spec, source


# ---------------------------------------------------------------------------------------------- PASCAL VOC
def _voc_ids(source, split, ids_file):
    root = resolve_voc_root(source['root'])
    return root, read_split(split_file(root, split, ids_file))


def _voc_box_items(source, split, ids_file=None, errors=None):
    root, ids = _voc_ids(source, split, ids_file)
    return voc_box_items(root, ids, errors)


def _voc_box_inputs(source, split, ids_file=None):
    root = resolve_voc_root(source['root'])
    return {'split_file': split_file(root, split, ids_file), 'annotations': os.path.join(root, 'Annotations')}


def _voc_segmentation_items(source, label_dir, split, ids_file=None):
    root, ids = _voc_ids(source, split, ids_file)
    return voc_items(root, ids, label_dir)


def _voc_eval_items(source, split, ids_file=None):
    root, ids = _voc_ids(source, split, ids_file)
    return [EvalItem(image_id, os.path.join(root, 'JPEGImages', f'{image_id}.jpg')) for image_id in ids]


def _voc_ground_truth(source, gt_dir, masks, scratch_dir):
    """SegmentationClassAug for pseudo masks (train_aug), SegmentationClass for a backbone (val)."""
    return folder_in_root(resolve_voc_root(source['root']),
                          gt_dir or ('SegmentationClassAug' if masks else 'SegmentationClass'))


register_dataset(DatasetSpec(
    name='voc', title='PASCAL VOC', classes=VOC_CLASSES, default_split='train_aug', test_size=512,
    box_items=_voc_box_items, box_inputs=_voc_box_inputs, segmentation_items=_voc_segmentation_items,
    eval_items=_voc_eval_items, ground_truth=_voc_ground_truth,
    ground_truth_dirs=('SegmentationClass', 'SegmentationClassAug'),
    root_help='VOC2012 folder (with JPEGImages/, Annotations/, ImageSets/; VOCdevkit/ or its parent also work)'))


# ---------------------------------------------------------------------------------------------- COCO-60
def _coco_box_items(source, split, ids_file=None, errors=None):
    return coco_box_items(source['root'], split, read_coco_ids(ids_file) if ids_file else None, errors)


def _coco_box_inputs(source, split, ids_file=None):
    return {'split_file': ids_file, 'boxes': bbox_annos_path(source['root'], split)}


def _coco_segmentation_items(source, label_dir, split, ids_file=None):
    """Every image with a mask in label_dir (pseudo masks exist only for images with non-VOC boxes),
    unless an id list is given."""
    if ids_file:
        ids = read_coco_ids(ids_file)
    else:
        directory = folder_in_root(source['root'], label_dir)
        ids = sorted(name[:-4] for name in os.listdir(directory) if name.endswith('.png'))
    return coco_items(source['root'], [coco_image_id(i) for i in ids], label_dir, split)


COCO60_CLASSES = ('background',) + tuple(COCO_CATEGORY_NAMES[COCO_CATEGORY_IDS.index(i)] for i in COCO60_IDS)

register_dataset(DatasetSpec(
    name='coco', title='COCO-60', classes=COCO60_CLASSES, default_split='train2017', test_size=640,
    box_items=_coco_box_items, box_inputs=_coco_box_inputs, segmentation_items=_coco_segmentation_items,
    ground_truth_dirs=('train2017_seg60',),
    root_help='COCO folder (with train2017/ and annotations/, after utils/parseCOCO.py)'))


# ---------------------------------------------------------------------------------------------- any COCO-format json
def _custom_box_items(source, split, ids_file=None, errors=None):
    items = custom.box_items(source['annotations'], source['image_dir'], errors)
    if ids_file:
        wanted = set(read_split(ids_file))
        items = [item for item in items if item.image_id in wanted]
    return items


def _custom_segmentation_items(source, label_dir, split, ids_file=None):
    return custom.segmentation_items(source['annotations'], source['image_dir'], label_dir, ids_file)


def _custom_eval_items(source, split, ids_file=None):
    return custom.eval_items(source['annotations'], source['image_dir'], ids_file)


def _custom_ground_truth(source, gt_dir, masks, scratch_dir):
    """A given --gt_dir, or the json's own masks written as PNGs into scratch_dir."""
    if gt_dir:
        return gt_dir
    return custom.write_ground_truth(source['annotations'], scratch_dir)


register_dataset(DatasetSpec(
    name='custom', title='COCO-format', classes=None, default_split=None, test_size=512,
    box_items=_custom_box_items, box_inputs=lambda source, split, ids_file=None: {
        'annotations': source['annotations'], 'split_file': ids_file},
    segmentation_items=_custom_segmentation_items, eval_items=_custom_eval_items,
    ground_truth=_custom_ground_truth, source_flags=('annotations', 'image_dir'),
    class_reader=lambda source: custom.target_class_names(source['annotations'])))
