"""Prepare COCO-60 for LPG from the COCO instance annotations.

    python utils/parseCOCO.py --dataRoot /data/coco [--split train2017]

reads <dataRoot>/annotations/instances_<split>.json and writes
  annotations/coco_<split>_bbox_annos.json  image id -> [[x1, y1, x1 + w, y1 + h, category_id], ...],
                                            every annotation (crowd and VOC classes too), annotation order;
  <split>_bbox60/ID12.png                   non-VOC boxes filled with their 1..60 class id;
  <split>_seg60/ID12.png                    non-VOC instance masks painted with their 1..60 class id.
Images whose annotations are all VOC classes (or that have none) get no PNGs. The label values
must match the original's: the released 61-class checkpoints index classes this way. The json is written
after the PNGs, then annotations/coco_<split>_labels_record.json; a rerun continues an interrupted parse.
"""
import argparse
import json
import os
import sys
import warnings

if __name__ == '__main__':  # run as a script: make the project packages importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from datasets.coco import bbox60_dir, bbox_annos_path, coco_image_id, seg60_dir
from datasets.constants import COCO_CATEGORY_IDS, COCO_ID_TO_60, COCO_VOC_IDS
from datasets.io import remove_files, remove_stale_temporaries, save_gray_png, write_json
from utils.records import Record
from utils.runtime import run_script


def instances_path(data_root, split='train2017'):
    return os.path.join(data_root, 'annotations', f'instances_{split}.json')


def load_instances(path):
    """Read and check a COCO instances json -> (images: {id: (height, width)} in file order, annotations)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'COCO annotation file not found: {path}')
    try:
        with open(path) as instances_file:
            instances = json.load(instances_file)
    except (OSError, ValueError) as error:
        raise ValueError(f'malformed COCO annotation file {path}: {error}') from error
    if not isinstance(instances, dict) or not isinstance(instances.get('images'), list) \
            or not isinstance(instances.get('annotations'), list):
        raise ValueError(f'malformed COCO annotation file {path}: expected a JSON object with '
                         f'"images" and "annotations" lists')
    images = {}
    for image in instances['images']:
        try:
            images[image['id']] = (int(image['height']), int(image['width']))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f'malformed COCO annotation file {path}: image entry {image!r:.200} '
                             f'lacks an integer id, height or width') from None
    known_categories = set(COCO_CATEGORY_IDS)
    for annotation in instances['annotations']:
        missing = [key for key in ('image_id', 'category_id', 'bbox', 'segmentation') if key not in annotation]
        if missing:
            raise ValueError(f'malformed COCO annotation file {path}: annotation {annotation.get("id")} '
                             f'lacks {", ".join(missing)}')
        if annotation['image_id'] not in images:
            raise ValueError(f'malformed COCO annotation file {path}: annotation {annotation.get("id")} '
                             f'refers to image {annotation["image_id"]}, which is not in "images"')
        if annotation['category_id'] not in known_categories:
            raise ValueError(f'malformed COCO annotation file {path}: annotation {annotation.get("id")} '
                             f'has category {annotation["category_id"]}, not one of the 80 COCO categories')
        if not isinstance(annotation['bbox'], list) or len(annotation['bbox']) != 4:
            raise ValueError(f'malformed COCO annotation file {path}: annotation {annotation.get("id")} '
                             f'has bbox {annotation["bbox"]!r}, expected [x, y, width, height]')
    return images, instances['annotations']


def annotation_mask(segmentation, height, width):
    """uint8 HxW mask of one annotation, decoded as pycocotools' COCO.annToMask does.

    Polygons are rasterised at the image's height/width from the "images" entry; crowd RLE
    (compressed or with a list of counts) is decoded with pycocotools."""
    if isinstance(segmentation, list):
        if not segmentation:
            return np.zeros((height, width), np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get('counts'), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    with warnings.catch_warnings():
        # pycocotools' decode trips NumPy 2's __array__(copy=...) deprecation; the result is unaffected
        warnings.simplefilter('ignore', DeprecationWarning)
        return mask_utils.decode(rle)


def bbox_label(boxes60, height, width):
    """Each (class60, x1, y1, x2, y2) box filled with its class, rows int(y1)..int(y2) and columns
    int(x1)..int(x2) inclusive, later boxes overwriting earlier ones."""
    label = np.zeros((height, width), np.uint8)
    for class60, x1, y1, x2, y2 in boxes60:
        # x1 + w can reach the image width: clip to the image (numpy would wrap a negative index).
        left, top = max(int(x1), 0), max(int(y1), 0)
        right, bottom = min(int(x2), width - 1), min(int(y2), height - 1)
        if right >= left and bottom >= top:
            label[top:bottom + 1, left:right + 1] = class60
    return label


def seg_label(annotations, height, width, where):
    """Per non-VOC category in order of first appearance, all its masks painted with its 60-class id;
    later categories overwrite earlier ones."""
    label = np.zeros((height, width), np.uint8)
    categories = dict.fromkeys(annotation['category_id'] for annotation in annotations)
    for category in categories:
        union = np.zeros((height, width), bool)
        for annotation in annotations:
            if annotation['category_id'] != category:
                continue
            try:
                mask = annotation_mask(annotation['segmentation'], height, width)
            except Exception as error:  # pycocotools' own errors name neither the annotation nor the file
                raise ValueError(f'{where}: annotation {annotation.get("id")} has a segmentation that cannot be '
                                 f'decoded ({type(error).__name__}: {error})') from None
            if mask.shape != (height, width):
                raise ValueError(f'{where}: annotation {annotation.get("id")} decodes to a '
                                 f'{mask.shape[1]}x{mask.shape[0]} mask but the image is {width}x{height}')
            union |= mask > 0
        label[union] = COCO_ID_TO_60[category]
    return label


def parse_record(data_root, split='train2017'):
    """The completion record of a split's parse, beside its box json: it ties the labels to the instances json."""
    return Record(os.path.join(data_root, 'annotations'), {'split': split},
                  {'instances': instances_path(data_root, split)}, name=f'coco_{split}_labels_record.json')


def step_done(args):
    """Whether the labels were all made already from the same instances json (run_rounds.py asks)."""
    return parse_record(args.dataRoot, args.split).is_done(labels_present(args.dataRoot, args.split))


def labels_present(data_root, split):
    """Whether the parse's PNGs are all still there (for Record.is_done)."""
    folder = seg60_dir(data_root, split)
    return lambda summary: os.path.isdir(folder) and \
        sum(name.endswith('.png') for name in os.listdir(folder)) == summary.get('images')


def parse_coco(data_root, split='train2017', overwrite=False):
    """Write the bbox60 / seg60 PNGs, then the bbox json, then the completion record, for one split.

    Returns the number of images with PNGs. A rerun on the same instances json skips what is done (an
    interrupted run continues); one on a changed json is refused unless overwrite. An image whose annotations
    cannot be decoded is reported and the others go on; a ValueError lists the failures at the end."""
    source = instances_path(data_root, split)
    record = parse_record(data_root, split)
    box_dir, mask_dir, annos_path = bbox60_dir(data_root, split), seg60_dir(data_root, split), \
        bbox_annos_path(data_root, split)
    if record.is_done(labels_present(data_root, split)):
        print(f'{mask_dir}: already parsed from the same {source}')
        return sum(name.endswith('.png') for name in os.listdir(mask_dir))
    images, annotations = load_instances(source)
    outputs = lambda: [os.path.join(folder, name) for folder in (box_dir, mask_dir) if os.path.isdir(folder)
                       for name in os.listdir(folder) if name.endswith('.png')]
    for folder in (box_dir, mask_dir, os.path.dirname(annos_path)):
        remove_stale_temporaries(folder)
    record.begin(bool(outputs()) or os.path.exists(annos_path), overwrite, what='COCO-60 labels',
                 clear=lambda: remove_files(outputs() + [annos_path, record.path]))

    per_image = {image_id: [] for image_id in images}  # keeps the order of "images"
    for annotation in annotations:
        per_image[annotation['image_id']].append(annotation)
    per_image = {image_id: anns for image_id, anns in per_image.items() if anns}
    os.makedirs(box_dir, exist_ok=True)
    os.makedirs(mask_dir, exist_ok=True)
    written, failed = 0, {}
    for image_id, anns in tqdm(per_image.items(), desc=f'parseCOCO {split}', unit='img'):
        non_voc = [annotation for annotation in anns if annotation['category_id'] not in COCO_VOC_IDS]
        if not non_voc:
            continue
        name = coco_image_id(image_id)
        box_path, mask_path = os.path.join(box_dir, f'{name}.png'), os.path.join(mask_dir, f'{name}.png')
        if not (os.path.exists(box_path) and os.path.exists(mask_path)):
            try:
                write_labels(images[image_id], non_voc, box_path, mask_path, where=f'{source}, image {image_id}')
            except ValueError as error:
                failed[image_id] = str(error)
                continue
        written += 1
    flat = [annotation['id'] for annotation in annotations if annotation['bbox'][2] <= 0 or annotation['bbox'][3] <= 0]
    if flat:
        print(f'notice: {source}: {len(flat)} annotations have boxes without area (ids {flat[:5]}...); '
              'trainLPG.py reports the images they belong to')
    # The box json last: run_rounds.py and trainLPG.py read it as the sign that the PNGs are there.
    bbox_annos = {str(image_id): [[x, y, x + w, y + h, annotation['category_id']] for annotation in anns
                                  for x, y, w, h in [annotation['bbox']]] for image_id, anns in per_image.items()}
    write_json(annos_path, bbox_annos, indent=None)
    record.write('incomplete' if failed else 'done', {'images': written, 'failed': failed, 'flat_boxes': flat})
    if failed:
        listing = '\n  '.join(f'image {image_id}: {reason}' for image_id, reason in list(failed.items())[:10])
        raise ValueError(f'{len(failed)} images could not be parsed (the {written} others are written):\n  {listing}')
    return written


def write_labels(image_size, annotations, box_path, mask_path, where):
    """The bbox60 and seg60 PNGs of one image."""
    height, width = image_size
    boxes60 = [(COCO_ID_TO_60[annotation['category_id']], x, y, x + w, y + h)
               for annotation in annotations for x, y, w, h in [annotation['bbox']]]
    mask = seg_label(annotations, height, width, where=where)
    save_gray_png(box_path, bbox_label(boxes60, height, width))
    save_gray_png(mask_path, mask)


def get_args_parser():
    parser = argparse.ArgumentParser(description='Prepare COCO-60 labels for LPG training.')
    parser.add_argument('--dataRoot', required=True, help='COCO root holding annotations/instances_<split>.json')
    parser.add_argument('--split', default='train2017', help='annotation split (default: train2017)')
    parser.add_argument('--overwrite', action='store_true',
                        help='parse again when the labels present were made from another instances json')
    return parser


def main(args):
    written = parse_coco(args.dataRoot, args.split, args.overwrite)
    print(f'wrote {bbox_annos_path(args.dataRoot, args.split)} and bbox60/seg60 PNGs for {written} images '
          f'under {args.dataRoot}')


if __name__ == '__main__':
    run_script(main, get_args_parser())
