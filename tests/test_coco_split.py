"""One COCO json split into a target side (images with VOC-class objects) and an auxiliary side (the others):
datasets/coco_split.py, which benchmarks/real_photos.py --coco_json uses."""
import json
import os

import pytest

from datasets.coco_split import split_json, split_target_auxiliary
from datasets.constants import COCO_VOC_IDS
from datasets.synthetic.coco_format import make_coco_like
from utils.engine.errors import InputError


@pytest.fixture(scope='module')
def instances_path(tmp_path_factory):
    root = make_coco_like(str(tmp_path_factory.mktemp('coco')), 40, 64, 2)
    return os.path.join(root, 'annotations', 'instances_train2017.json')


def ids(side):
    return {image['id'] for image in side['images']}


def test_the_sides_are_disjoint_and_no_voc_class_is_auxiliary(instances_path):
    aux, target = split_json(instances_path, seed=0)
    instances = json.load(open(instances_path))
    with_voc = {a['image_id'] for a in instances['annotations'] if a['category_id'] in COCO_VOC_IDS}
    annotated = {a['image_id'] for a in instances['annotations']}
    assert with_voc and annotated - with_voc  # the generated file has both kinds of image
    assert ids(target) == with_voc and ids(aux) == annotated - with_voc and not ids(aux) & ids(target)
    assert all(a['category_id'] not in COCO_VOC_IDS for a in aux['annotations'])
    assert all(cat['id'] not in COCO_VOC_IDS for cat in aux['categories'])
    assert all(a['category_id'] in COCO_VOC_IDS and a['image_id'] in with_voc for a in target['annotations'])
    assert {a['image_id'] for a in aux['annotations']} == ids(aux)


def test_a_capped_split_follows_its_seed(instances_path):
    instances = json.load(open(instances_path))
    first = split_target_auxiliary(instances, seed=1, max_target=5, max_auxiliary=4)
    assert first == split_target_auxiliary(instances, seed=1, max_target=5, max_auxiliary=4)
    assert len(first[1]['images']) == 5 and len(first[0]['images']) == 4
    others = [split_target_auxiliary(instances, seed=seed, max_target=5, max_auxiliary=4) for seed in (2, 3, 4)]
    assert any(ids(other[1]) != ids(first[1]) for other in others)


def test_a_json_without_one_side_is_refused(instances_path):
    instances = json.load(open(instances_path))
    no_voc = dict(instances, annotations=[a for a in instances['annotations'] if a['category_id'] not in COCO_VOC_IDS])
    with pytest.raises(InputError, match='both sides need images'):
        split_target_auxiliary(no_voc)
