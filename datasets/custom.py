"""Any COCO-format dataset: boxes to turn into pseudo masks (a target), or masks to train a generator on
(an auxiliary set).

Classes are the file's categories by ascending id: 1..K for a target (0 = background), 1..N for an
auxiliary set less its excluded categories. Images are named after their file (`file_name` without folder
and extension), which must be unique; pseudo masks and labels are `<name>.png`.
"""
import json
import os
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from utils.engine.errors import InputError, MissingFile
from utils.engine.files import write_json

from .boxes import BoxItem
from .coco_json import Instances, box_corners, load_instances, semantic_label
from .io import ImageFrame, read_label, save_palette_png
from .lpg_samples import LPGSampleDataset
from .segmentation import EvalItem, SegmentationItem


def image_names(instances: Instances) -> dict[int, str]:
    """{image id: name}, the name being the file name without folder and extension (the id without a file
    name). Names must be unique and file names may not leave the image folder."""
    names, seen = {}, {}
    for image_id, image in instances.images.items():
        file_name = image['file_name']
        if os.path.isabs(file_name) or '..' in file_name.replace('\\', '/').split('/'):
            raise InputError(f'{instances.path}: image {image_id} has file_name {file_name!r}, which leaves the '
                             'image folder')
        name = os.path.splitext(os.path.basename(file_name))[0] if file_name else str(image_id)
        if name in seen:
            raise InputError(f'{instances.path}: images {seen[name]} and {image_id} share the file name {name!r}; '
                             'pseudo masks are named after it, so it must be unique')
        names[image_id], seen[name] = name, image_id
    return names


def image_path(image_dir: str, instances: Instances, image_id: int) -> str:
    image = instances.images[image_id]
    return os.path.join(image_dir, image['file_name'] or f'{image_id}.jpg')


def declared_frame(instances: Instances, image_id: int) -> ImageFrame:
    """The ImageFrame of an image's width and height in the json."""
    image = instances.images[image_id]
    return ImageFrame(image['height'], image['width'], f'its size in {instances.path} (image {image_id})')


def target_classes(instances: Instances) -> list[tuple[int, str]]:
    """[(category id, name)] of a target dataset, by ascending id: classes 1..K."""
    return sorted(instances.categories)


def auxiliary_classes(instances: Instances, exclude_names: Optional[Sequence[str]]) -> list[tuple[int, str]]:
    """[(category id, name)] of an auxiliary set, by ascending id, without the excluded names (which the file
    must have)."""
    names = {name for _, name in instances.categories}
    unknown = [name for name in exclude_names or [] if name not in names]
    if unknown:
        raise InputError(f'--exclude_categories names {unknown} that {instances.path} does not have; its categories '
                         f'are {sorted(names)}')
    return [(cat_id, name) for cat_id, name in sorted(instances.categories) if name not in set(exclude_names or [])]


def class_table(classes: Sequence[tuple[int, str]]) -> dict[str, dict]:
    """classes.json: class index -> category id and name (0 = background)."""
    return {'0': {'id': None, 'name': 'background'},
            **{str(index): {'id': cat_id, 'name': name} for index, (cat_id, name) in enumerate(classes, 1)}}


# ---------------------------------------------------------------------------------------------- target side
def box_items(annotations: str, image_dir: str, errors: Optional[list[tuple[str, str]]] = None) -> list[BoxItem]:
    """BoxItems: (name, image path, [(class, x1, y1, x2, y2)], boxes in annotation order, the frame of the
    image's width and height) for every image with boxes. A box without area makes its image fail: with an
    errors list it is collected there as (name, message naming the file and the annotation), otherwise it
    raises."""
    instances = load_instances(annotations, need_segmentation=False)
    names = image_names(instances)
    class_of = {cat_id: index for index, (cat_id, _) in enumerate(target_classes(instances), 1)}
    items = []
    for image_id, anns in instances.by_image().items():
        flat = [a for a in anns if a['bbox'][2] <= 0 or a['bbox'][3] <= 0]
        if flat:
            message = (f'{annotations}: annotation {flat[0].get("id")} of image {image_id} has a box without area '
                       f'({flat[0]["bbox"]})')
            if errors is None:
                raise InputError(message)
            errors.append((names[image_id], message))
            continue
        boxes = [(class_of[a['category_id']], *box_corners(a)) for a in anns]
        items.append(BoxItem(names[image_id], image_path(image_dir, instances, image_id), boxes,
                             declared_frame(instances, image_id)))
    return items


def write_target_outputs(annotations: str, out_dir: str, instances_dir: Optional[str] = None) -> str:
    """classes.json and pseudo_masks.json (COCO format, masks as RLE) beside the PNGs in out_dir.

    Semantic (default): one annotation per (image, class) of each PNG. With instances_dir, one annotation per
    box, its own mask, read from <instances_dir>/<name>.json (the RLEs of the image's boxes, in annotation
    order); each names its box annotation as source_annotation, and a crowd box's keeps iscrowd 1. Returns the
    json path."""
    instances = load_instances(annotations, need_segmentation=False)
    classes = target_classes(instances)
    write_json(os.path.join(out_dir, 'classes.json'), class_table(classes))
    names = image_names(instances)
    per_image = instances.by_image()
    results = []
    for image_id, name in names.items():
        png = os.path.join(out_dir, f'{name}.png')
        if not os.path.exists(png):
            continue
        if instances_dir is not None:
            with open(os.path.join(instances_dir, f'{name}.json')) as handle:
                masks = json.load(handle)
            for source, mask in zip(per_image.get(image_id, []), masks):
                # A crowd box (a group of objects) keeps its iscrowd: 1, as COCO's tools expect.
                results.append(dict(mask, id=len(results) + 1, image_id=image_id, category_id=source['category_id'],
                                    iscrowd=1 if source.get('iscrowd') else 0, source_annotation=source.get('id')))
            continue
        label = read_label(png)
        for index in sorted(set(np.unique(label).tolist()) - {0, 255}):
            results.append(rle_annotation(len(results) + 1, image_id, classes[index - 1][0], label == index))
    out = {'images': [dict(id=i, **image) for i, image in instances.images.items()],
           'categories': [{'id': cat_id, 'name': name} for cat_id, name in classes], 'annotations': results}
    path = os.path.join(out_dir, 'pseudo_masks.json')
    write_json(path, out, indent=None)
    return path


def rle_annotation(annotation_id: int, image_id: Optional[int], category_id: Optional[int], mask: np.ndarray,
                   **extra: object) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    return {'id': annotation_id, 'image_id': image_id, 'category_id': category_id, 'iscrowd': 0,
            'area': float(mask_utils.area(rle)), 'bbox': [x, y, w, h],
            'segmentation': {'size': rle['size'], 'counts': rle['counts'].decode('ascii')}, **extra}


def segmentation_items(annotations: str, image_dir: str, label_dir: str,
                       ids_file: Optional[str] = None) -> list[SegmentationItem]:
    """SegmentationDataset items: (name, image path, <label_dir>/<name>.png) for the images that have a label
    PNG there (pseudo masks exist for images with boxes), or for the names of ids_file."""
    instances = load_instances(annotations, need_segmentation=False)
    names = image_names(instances)
    if ids_file:
        from .voc import read_split
        wanted = set(read_split(ids_file))
        chosen = [i for i, name in names.items() if name in wanted]
    else:
        present = set(os.listdir(label_dir)) if os.path.isdir(label_dir) else set()
        chosen = [i for i, name in names.items() if f'{name}.png' in present]
    return [SegmentationItem(names[i], image_path(image_dir, instances, i), os.path.join(label_dir, f'{names[i]}.png'))
            for i in chosen]


def eval_items(annotations: str, image_dir: str, ids_file: Optional[str] = None) -> list[EvalItem]:
    """(name, image path) of the images to evaluate: those of ids_file, or all the file lists."""
    instances = load_instances(annotations, need_segmentation=False)
    names = image_names(instances)
    if ids_file:
        from .voc import read_split
        wanted = set(read_split(ids_file))
        names = {i: name for i, name in names.items() if name in wanted}
    return [EvalItem(name, image_path(image_dir, instances, i)) for i, name in names.items()]


def write_ground_truth(annotations: str, out_dir: str) -> str:
    """The file's masks as palette PNGs of class indices 1..K (0 = background, categories in order of first
    appearance overwrite earlier ones), one per image, in out_dir; for test.py to score against. Raises a
    ValueError when the file has no masks."""
    instances = load_instances(annotations)
    if not any(a.get('segmentation') for a in instances.annotations):
        raise InputError(f'{annotations} has no masks (no annotation has a "segmentation") to score against')
    class_of = {cat_id: index for index, (cat_id, _) in enumerate(target_classes(instances), 1)}
    per_image = instances.by_image()
    for image_id, name in image_names(instances).items():
        path = os.path.join(out_dir, f'{name}.png')
        if os.path.exists(path):
            continue
        image = instances.images[image_id]
        label = semantic_label(per_image.get(image_id, []), image['height'], image['width'], class_of,
                               f'{annotations}, image {image_id}')
        save_palette_png(path, label)
    return out_dir


def target_class_names(annotations: str) -> tuple[str, ...]:
    return ('background',) + tuple(name for _, name in target_classes(load_instances(annotations,
                                                                                     need_segmentation=False)))


# ---------------------------------------------------------------------------------------------- auxiliary side
class CustomLabels:
    """Where `utils/parseCOCO.py --annotations` (and trainLPG.py --dataset custom) writes the labels of an
    auxiliary set: box/ and seg/ PNGs named after the images, and boxes.json:
    {'annotations': the source json, 'classes': classes.json's table, 'images': {name: file_name},
     'boxes': {name: [[x1, y1, x2, y2, class], ...]}} for the kept categories."""

    def __init__(self, folder: str):
        self.folder = folder
        self.box_dir, self.mask_dir = os.path.join(folder, 'box'), os.path.join(folder, 'seg')
        self.boxes_path = os.path.join(folder, 'boxes.json')

    def box_file_content(self, instances: Instances, classes: Sequence[tuple[int, str]], names: Mapping[int, str],
                         per_image: Mapping[int, list[dict]]) -> dict:
        class_of = {cat_id: index for index, (cat_id, _) in enumerate(classes, 1)}
        boxes = {names[image_id]: [[*box_corners(a), class_of[a['category_id']]] for a in anns
                                   if a['category_id'] in class_of] for image_id, anns in per_image.items()}
        return {'annotations': os.path.abspath(instances.path), 'classes': class_table(classes),
                'images': {names[i]: instances.images[i]['file_name'] for i in per_image},
                'boxes': {name: image_boxes for name, image_boxes in boxes.items() if image_boxes}}

    def load(self) -> dict:
        if not os.path.isfile(self.boxes_path):
            raise MissingFile(f'auxiliary labels not found: {self.boxes_path}')
        with open(self.boxes_path) as handle:
            return json.load(handle)

    def num_classes(self) -> int:
        return len(self.load()['classes'])

    def dataset(self, image_dir: str, **options: Any) -> LPGSampleDataset:
        """The LPG training samples of these labels (see LPGSampleDataset)."""
        content = self.load()
        boxes = {name: [(int(c), x1, y1, x2, y2) for x1, y1, x2, y2, c in image_boxes]
                 for name, image_boxes in content['boxes'].items()}
        paths = {name: os.path.join(image_dir, content['images'][name]) for name in boxes}
        return LPGSampleDataset(paths, boxes, self.mask_dir, len(content['classes']), self.boxes_path,
                                'auxiliary', **options)
