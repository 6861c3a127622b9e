"""One COCO-format json split into the two sides of LPG: a target set (the images holding a VOC-class object, with
their VOC-class annotations only) and an auxiliary set (the images holding none, with all their annotations and no
VOC category), so that a researcher with only COCO's `instances_val2017.json` and its images can measure pseudo
masks on real photographs. No image is on both sides and no VOC class is on the auxiliary side. The seed decides
which images are kept when a side is capped."""
import json
from typing import Optional

import numpy as np

from utils.engine.errors import InputError

from .coco_json import load_instances
from .constants import COCO_VOC_IDS


def split_target_auxiliary(instances: dict, seed: int = 0, max_target: Optional[int] = None,
                           max_auxiliary: Optional[int] = None, target_ids=COCO_VOC_IDS) -> tuple[dict, dict]:
    """(auxiliary json, target json) of a COCO-format json (as loaded). target_ids: the category ids of the target
    classes (default the 20 COCO ids of the VOC classes). The target json keeps only the target classes' annotations
    and categories: the other objects in its images are background in its truth, as unlabelled objects are in VOC.
    Images without annotations go to neither side. Each side is shuffled with the seed, capped, and kept in the
    file's order."""
    target_ids = frozenset(target_ids)
    annotated, with_target = set(), set()
    for annotation in instances['annotations']:
        annotated.add(annotation['image_id'])
        if annotation['category_id'] in target_ids:
            with_target.add(annotation['image_id'])
    rng = np.random.default_rng(seed)
    target = pick([image['id'] for image in instances['images'] if image['id'] in with_target], max_target, rng)
    auxiliary = pick([image['id'] for image in instances['images'] if image['id'] in annotated - with_target],
                     max_auxiliary, rng)
    if not target or not auxiliary:
        raise InputError(f'the json has {len(target)} images with a target-class object and {len(auxiliary)} without: '
                         'both sides need images')
    return (subset(instances, auxiliary, lambda cat: cat not in target_ids),
            subset(instances, target, lambda cat: cat in target_ids))


def pick(image_ids, limit, rng):
    """A seeded choice of at most `limit` of the ids, as a set."""
    if limit is None or limit >= len(image_ids):
        return set(image_ids)
    return {image_ids[i] for i in rng.permutation(len(image_ids))[:limit]}


def subset(instances, image_ids, keep_category):
    """The json restricted to these images and to the categories keep_category accepts (their annotations too)."""
    return {'images': [image for image in instances['images'] if image['id'] in image_ids],
            'annotations': [a for a in instances['annotations']
                            if a['image_id'] in image_ids and keep_category(a['category_id'])],
            'categories': [cat for cat in instances['categories'] if keep_category(cat['id'])]}


def split_json(path: str, seed: int = 0, max_target: Optional[int] = None,
               max_auxiliary: Optional[int] = None) -> tuple[dict, dict]:
    """split_target_auxiliary of a json file, checked first (datasets.coco_json.load_instances: a malformed file
    is refused in one line naming it and the entry)."""
    load_instances(path)
    with open(path) as handle:
        return split_target_auxiliary(json.load(handle), seed, max_target, max_auxiliary)
