"""Prepare an auxiliary set for LPG training from COCO-format instance annotations.

    python utils/parseCOCO.py --dataRoot /data/coco [--split train2017]

reads <dataRoot>/annotations/instances_<split>.json and writes (COCO-60, the release's labelling)
  annotations/coco_<split>_bbox_annos.json  image id -> [[x1, y1, x1 + w, y1 + h, category_id], ...],
                                            every annotation (crowd and VOC classes too), annotation order;
  <split>_bbox60/ID12.png                   non-VOC boxes filled with their 1..60 class id;
  <split>_seg60/ID12.png                    non-VOC instance masks painted with their 1..60 class id.
Images whose annotations are all VOC classes (or that have none) get no PNGs. The label values
must match the original's: the released 61-class checkpoints index classes this way. The json is written
after the PNGs, then annotations/coco_<split>_labels_record.json; a rerun continues an interrupted parse.

    python utils/parseCOCO.py --annotations FILE.json --exclude_categories NAME,NAME --labels_dir OUT

labels any COCO-format mask dataset the same way (trainLPG.py --dataset custom runs this step itself): the
categories not excluded, by ascending id, become classes 1..N; OUT gets box/ and seg/ PNGs named after the
image files, then boxes.json (see datasets/custom.py), then its record.
"""
import os
import sys

if __name__ == '__main__':  # run as a script: make the project packages importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tqdm import tqdm

from datasets.coco import bbox60_dir, bbox_annos_path, coco_image_id, seg60_dir
from datasets.coco_json import bbox_label, box_corners, load_instances, semantic_label
from datasets.constants import COCO_CATEGORY_IDS, COCO_ID_TO_60
from datasets.custom import CustomLabels, auxiliary_classes, image_names
from datasets.io import save_gray_png
from utils.engine.errors import InputError, failure_listing
from utils.engine.files import claim_folder, releases_claims, remove_files, write_json
from utils.engine.flags import ScriptParser
from utils.engine.records import Completion, Record
from utils.engine.runtime import comma_list, run_script
from utils.engine.steps import ScriptStep, register_step


def instances_path(data_root, split='train2017'):
    return os.path.join(data_root, 'annotations', f'instances_{split}.json')


def parse_record(data_root, split='train2017'):
    """The completion record of a split's parse, beside its box json: it ties the labels to the instances json."""
    return Record(os.path.join(data_root, 'annotations'), {'split': split},
                  {'instances': instances_path(data_root, split)}, name=f'coco_{split}_labels_record.json')


def labels_present(mask_dir):
    """Whether a labelling's mask PNGs are all still there (for Record.is_done)."""
    return lambda summary: os.path.isdir(mask_dir) and \
        sum(name.endswith('.png') for name in os.listdir(mask_dir)) == summary.get('images')


def completion(args):
    """The labels' completion for these flags (None without a dataset to label): the one parse_coco or
    label_custom checks and writes."""
    if args.annotations:
        return custom_completion(args.annotations, CustomLabels(args.labels_dir), args.exclude_categories) \
            if args.labels_dir else None
    return coco_completion(args.dataRoot, args.split) if args.dataRoot else None


def coco_completion(data_root, split):
    """COCO-60's labels: made from the same instances json, their mask PNGs all still there."""
    return Completion(parse_record(data_root, split), labels_present(seg60_dir(data_root, split)))


def custom_completion(annotations, labels, exclude_categories):
    """A custom auxiliary set's labels: made from the same annotations, their mask PNGs all still there."""
    return Completion(custom_record(annotations, labels, exclude_categories), labels_present(labels.mask_dir))


@releases_claims
def label_images(instances, class_of, name_of, box_dir, mask_dir, boxes_json, record, overwrite, what):
    """The labelling step: for every image with a kept category (class_of: {category id: class}), its box PNG
    and mask PNG of class indices, named name_of(image id); then the box file (boxes_json(per_image), written
    after the PNGs), then the record. Continues an interrupted run on the same annotations; other annotations
    are refused unless overwrite. An image whose annotations cannot be decoded is reported and the others go
    on; a ValueError lists the failures at the end. Returns the number of images with PNGs."""
    source, annos_path = instances.path, boxes_json[0]
    outputs = lambda: [os.path.join(folder, name) for folder in (box_dir, mask_dir) if os.path.isdir(folder)
                       for name in os.listdir(folder) if name.endswith('.png')]
    for folder in (box_dir, mask_dir, os.path.dirname(annos_path)):
        claim_folder(folder)
    record.begin(bool(outputs()) or os.path.exists(annos_path), overwrite, what=what,
                 clear=lambda: remove_files(outputs() + [annos_path, record.path]))
    per_image = instances.by_image()
    os.makedirs(box_dir, exist_ok=True)
    os.makedirs(mask_dir, exist_ok=True)
    written, failed = 0, {}
    for image_id, anns in tqdm(per_image.items(), desc=f'labelling {os.path.basename(source)}', unit='img'):
        kept = [annotation for annotation in anns if annotation['category_id'] in class_of]
        if not kept:
            continue
        name = name_of(image_id)
        box_path, mask_path = os.path.join(box_dir, f'{name}.png'), os.path.join(mask_dir, f'{name}.png')
        if not (os.path.exists(box_path) and os.path.exists(mask_path)):
            image = instances.images[image_id]
            try:
                mask = semantic_label(kept, image['height'], image['width'], class_of, f'{source}, image {image_id}')
            except ValueError as error:
                failed[image_id] = str(error)
                continue
            boxes = [(class_of[annotation['category_id']], *box_corners(annotation)) for annotation in kept]
            save_gray_png(box_path, bbox_label(boxes, image['height'], image['width']))
            save_gray_png(mask_path, mask)
        written += 1
    flat = [annotation['id'] for annotation in instances.annotations
            if annotation['bbox'][2] <= 0 or annotation['bbox'][3] <= 0]
    if flat:
        print(f'notice: {source}: {len(flat)} annotations have boxes without area (ids {flat[:5]}...); '
              'trainLPG.py reports the images they belong to')
    # The box file last: run_rounds.py and trainLPG.py read it as the sign that the PNGs are there.
    write_json(annos_path, boxes_json[1](per_image), indent=None)
    record.write('incomplete' if failed else 'done', {'images': written, 'failed': failed, 'flat_boxes': flat})
    if failed:
        raise InputError(f'{len(failed)} images could not be labelled (the {written} others are written):\n  '
                         + failure_listing({f'image {image_id}': reason for image_id, reason in failed.items()}))
    return written


def parse_coco(data_root, split='train2017', overwrite=False):
    """COCO-60: the release's labelling of COCO (see the module docstring). Returns the images with PNGs."""
    done = coco_completion(data_root, split)
    record, mask_dir = done.record, seg60_dir(data_root, split)
    if done.done():
        print(f'{mask_dir}: already parsed from the same {instances_path(data_root, split)}')
        return sum(name.endswith('.png') for name in os.listdir(mask_dir))
    instances = load_instances(instances_path(data_root, split), known_categories=COCO_CATEGORY_IDS)
    # The release's box json lists every annotation, the VOC classes and crowds included.
    box_json = lambda per_image: {str(image_id): [[*box_corners(annotation), annotation['category_id']]
                                                  for annotation in anns] for image_id, anns in per_image.items()}
    return label_images(instances, COCO_ID_TO_60, coco_image_id, bbox60_dir(data_root, split), mask_dir,
                        (bbox_annos_path(data_root, split), box_json), record, overwrite, 'COCO-60 labels')


def custom_record(annotations, labels, exclude_categories):
    return Record(labels.folder, {'exclude_categories': sorted(exclude_categories or [])},
                  {'annotations': annotations}, name='labels_record.json')


def label_custom(annotations, labels_dir, exclude_categories, overwrite=False):
    """Any COCO-format mask dataset as an auxiliary set: the categories not named in exclude_categories
    (names), by ascending id, become classes 1..N. Returns the CustomLabels."""
    labels = CustomLabels(labels_dir)
    done = custom_completion(annotations, labels, exclude_categories)
    record = done.record
    if done.done():
        print(f'{labels.folder}: already labelled from the same {annotations}')
        return labels
    instances = load_instances(annotations)
    classes = auxiliary_classes(instances, exclude_categories)
    names = image_names(instances)
    box_json = lambda per_image: labels.box_file_content(instances, classes, names, per_image)
    label_images(instances, {cat_id: index for index, (cat_id, _) in enumerate(classes, 1)}, names.__getitem__,
                 labels.box_dir, labels.mask_dir, (labels.boxes_path, box_json), record, overwrite,
                 'auxiliary labels')
    return labels


def get_args_parser():
    parser = ScriptParser(__doc__)
    parser.add_argument('--dataRoot', help='COCO root holding annotations/instances_<split>.json (COCO-60)')
    parser.add_argument('--split', default='train2017', help='annotation split (default: train2017)')
    parser.add_argument('--annotations', help='any COCO-format instances json with masks (instead of --dataRoot)')
    parser.add_argument('--exclude_categories', type=comma_list,
                        help='with --annotations: category names left out (as COCO-60 leaves out the VOC classes)')
    parser.add_argument('--labels_dir', help='with --annotations: output folder')
    parser.add_argument('--overwrite', action='store_true',
                        help='label again when the labels present were made from other annotations')
    return parser


def main(args):
    if args.annotations:
        if not args.labels_dir:
            raise InputError('--annotations needs --labels_dir')
        labels = label_custom(args.annotations, args.labels_dir, args.exclude_categories, args.overwrite)
        print(f'wrote {labels.boxes_path} and box/seg PNGs under {labels.folder}')
        return
    if not args.dataRoot:
        raise InputError('give --dataRoot (COCO-60) or --annotations (any COCO-format dataset)')
    written = parse_coco(args.dataRoot, args.split, args.overwrite)
    print(f'wrote {bbox_annos_path(args.dataRoot, args.split)} and bbox60/seg60 PNGs for {written} images '
          f'under {args.dataRoot}')


STEP = register_step(ScriptStep(os.path.join('utils', 'parseCOCO.py'), get_args_parser, completion))

if __name__ == '__main__':
    run_script(main, get_args_parser())
