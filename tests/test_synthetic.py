"""The synthetic COCO-like and VOC-like datasets must be in the real formats, agree with
what was painted, and leave a filled box clearly worse than the true mask."""
import filecmp
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from datasets import synthetic
from datasets.constants import COCO_CATEGORY_IDS, COCO_VOC_IDS, VOC_CLASSES, VOC_PALETTE

SIZE = 128
NUM_COCO = 12
NUM_TRAIN, NUM_VAL = 12, 6


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    return synthetic.make_coco_like(str(tmp_path_factory.mktemp('coco')), NUM_COCO, SIZE, seed=3)


@pytest.fixture(scope='module')
def coco(coco_root):
    return COCO(os.path.join(coco_root, 'annotations', 'instances_train2017.json'))


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory):
    return synthetic.make_voc_like(str(tmp_path_factory.mktemp('voc')), NUM_TRAIN, NUM_VAL, SIZE, seed=3)


def _split(voc_root, name):
    with open(os.path.join(voc_root, 'ImageSets', 'Segmentation', f'{name}.txt')) as handle:
        return [line.strip() for line in handle if line.strip()]


def _xml_objects(path):
    """(class_id, x1, y1, x2, y2) 0-based from direct <object> children, ignoring <part>."""
    objects = []
    for obj in ET.parse(path).getroot().findall('object'):
        box = obj.find('bndbox')
        coords = [int(box.find(tag).text) - 1 for tag in ('xmin', 'ymin', 'xmax', 'ymax')]
        objects.append((VOC_CLASSES.index(obj.find('name').text), *coords))
    return objects


def _iou(a, b):
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


def test_coco_annotations_reproduce_painted_regions(coco, coco_root):
    image_ids = sorted(coco.getImgIds())
    assert image_ids == synthetic.coco_image_ids(NUM_COCO)
    for index, image_id in enumerate(image_ids):
        info = coco.loadImgs(image_id)[0]
        assert info['file_name'] == f'{image_id:012d}.jpg' and (info['height'], info['width']) == (SIZE, SIZE)
        image, objects, instance_map = synthetic.coco_like_sample(index, SIZE, seed=3)
        on_disk = cv2.imread(os.path.join(coco_root, 'train2017', info['file_name'])).astype(np.float32)
        assert np.abs(on_disk - image).mean() < 3.0  # JPEG q95 of the same picture
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=None))
        assert [a['category_id'] for a in annotations] == [o['category_id'] for o in objects]
        for k, annotation in enumerate(annotations):
            painted = instance_map == k + 1  # visible part after later objects were painted over
            decoded = coco.annToMask(annotation).astype(bool)
            assert _iou(decoded, painted) > 0.9
            assert not np.any(painted & ~decoded)
            assert annotation['area'] == pytest.approx(decoded.sum())
            x, y, w, h = annotation['bbox']
            ys, xs = np.nonzero(decoded)
            # parseCOCO fills columns int(x)..int(x + w): that covers the mask, as tight as
            # the polygon's extent allows (a sharp corner may cover no pixel centre)
            assert 0 <= xs.min() - int(x) <= 3 and 0 <= int(x + w) - xs.max() <= 3
            assert 0 <= ys.min() - int(y) <= 3 and 0 <= int(y + h) - ys.max() <= 3


def test_coco_has_every_format_feature(coco):
    assert sorted(c['id'] for c in coco.loadCats(coco.getCatIds())) == sorted(COCO_CATEGORY_IDS)
    annotations = coco.loadAnns(coco.getAnnIds(iscrowd=None))
    assert len({a['id'] for a in annotations}) == len(annotations)
    polygons = [a for a in annotations if not a['iscrowd']]
    assert all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for a in polygons for p in a['segmentation'])
    assert any(len(a['segmentation']) > 1 for a in polygons)  # an object in several parts
    categories = {a['category_id'] for a in annotations}
    assert categories & COCO_VOC_IDS and len(categories - COCO_VOC_IDS) >= 3
    per_image = {image_id: {a['category_id'] for a in coco.imgToAnns[image_id]} for image_id in coco.getImgIds()}
    assert any(not cats for cats in per_image.values())  # an image without annotations
    assert any(cats and cats <= COCO_VOC_IDS for cats in per_image.values())  # only VOC classes


def test_coco_crowd_rle_round_trips(coco):
    crowds = coco.loadAnns(coco.getAnnIds(iscrowd=True))
    assert crowds and all(a['iscrowd'] == 1 for a in crowds)
    for annotation in crowds:
        rle = annotation['segmentation']
        assert isinstance(rle['counts'], list) and rle['size'] == [SIZE, SIZE]
        assert sum(rle['counts']) == SIZE * SIZE
        mask = coco.annToMask(annotation)
        assert mask.sum() == annotation['area'] > 0
        assert synthetic._crowd_rle(mask) == rle
        # column-major like COCO: pycocotools' own (compressed) encoding decodes to the same mask
        compressed = mask_utils.encode(np.asfortranarray(mask))
        assert np.array_equal(mask_utils.decode(compressed), mask)
        assert mask_utils.decode(mask_utils.frPyObjects(rle, SIZE, SIZE)).sum() == mask.sum()


def test_voc_boxes_are_tight_bounds_of_the_masks(voc_root):
    train, val = _split(voc_root, 'train'), _split(voc_root, 'val')
    assert _split(voc_root, 'train_aug') == train and not set(train) & set(val)
    assert len(train) == NUM_TRAIN and len(val) == NUM_VAL
    for image_id in train + val:
        label = np.array(Image.open(os.path.join(voc_root, 'SegmentationClassAug', f'{image_id}.png')))
        objects = _xml_objects(os.path.join(voc_root, 'Annotations', f'{image_id}.xml'))
        assert objects
        for class_id in np.unique(label[label > 0]):
            boxes = [o[1:] for o in objects if o[0] == class_id]
            covered = np.zeros(label.shape, bool)
            for x1, y1, x2, y2 in boxes:
                covered[y1:y2 + 1, x1:x2 + 1] = True
                inside = label[y1:y2 + 1, x1:x2 + 1] == class_id
                # every edge of a tight box touches the object
                assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
            assert not np.any((label == class_id) & ~covered)
        assert {o[0] for o in objects} == set(np.unique(label[label > 0]).tolist())


def test_voc_instance_boxes_and_person_parts(voc_root):
    train = _split(voc_root, 'train')
    assert train == sorted(synthetic.voc_image_ids(NUM_TRAIN))
    parts_seen = 0
    for index, image_id in enumerate(synthetic.voc_image_ids(NUM_TRAIN)):
        _, objects, instance_map = synthetic.voc_like_sample(index, SIZE, seed=3)
        root = ET.parse(os.path.join(voc_root, 'Annotations', f'{image_id}.xml')).getroot()
        assert root.find('filename').text == f'{image_id}.jpg'
        assert [int(root.find('size').find(t).text) for t in ('width', 'height', 'depth')] == [SIZE, SIZE, 3]
        parsed_objects = _xml_objects(os.path.join(voc_root, 'Annotations', f'{image_id}.xml'))
        assert len(parsed_objects) == len(objects)
        for k, (obj, parsed) in enumerate(zip(objects, parsed_objects)):
            ys, xs = np.nonzero(instance_map == k + 1)
            assert parsed == (obj['class_id'], xs.min(), ys.min(), xs.max(), ys.max())
        for element in root.findall('object'):
            for part in element.findall('part'):
                assert element.find('name').text == 'person'
                own = [int(element.find('bndbox').find(t).text) for t in ('xmin', 'ymin', 'xmax', 'ymax')]
                box = [int(part.find('bndbox').find(t).text) for t in ('xmin', 'ymin', 'xmax', 'ymax')]
                assert own[0] <= box[0] <= box[2] <= own[2] and own[1] <= box[1] <= box[3] <= own[3]
                parts_seen += 1
    assert parts_seen > 0


def test_voc_palette_pngs(voc_root):
    allowed = {0} | {VOC_CLASSES.index(name) for name in synthetic.DEFAULT_VOC_CLASSES}
    saw_void = False
    ids = synthetic.voc_image_ids(NUM_TRAIN + NUM_VAL)
    for index, image_id in enumerate(ids):
        images = {name: Image.open(os.path.join(voc_root, name, f'{image_id}.png'))
                  for name in ('SegmentationClassAug', 'SegmentationClass', 'SegmentationObject')}
        for image in images.values():
            assert image.mode == 'P' and image.getpalette()[:768] == VOC_PALETTE
        aug, voc, instances = (np.array(image) for image in images.values())
        assert set(np.unique(aug).tolist()) <= allowed
        assert set(np.unique(voc).tolist()) <= allowed | {255}
        void = voc == 255
        saw_void |= bool(void.any())
        assert np.array_equal(voc[~void], aug[~void])
        assert np.array_equal(instances == 255, void)
        assert np.array_equal(instances[~void] == 0, aug[~void] == 0)
        # void only on a thin band around object outlines (instances of one class included)
        in_val = index >= NUM_TRAIN
        _, _, drawn = synthetic.voc_like_sample(index - NUM_TRAIN * in_val, SIZE, seed=3, split_offset=int(in_val))
        assert np.array_equal(aug > 0, drawn > 0)
        edges = cv2.morphologyEx(drawn, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        near_edge = cv2.dilate(edges.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert not np.any(void & ~near_edge)
    assert saw_void


def test_filled_boxes_leave_room_for_improvement(voc_root):
    confusion = np.zeros((21, 21), np.int64)
    for image_id in _split(voc_root, 'train') + _split(voc_root, 'val'):
        label = np.array(Image.open(os.path.join(voc_root, 'SegmentationClassAug', f'{image_id}.png')))
        filled = np.zeros_like(label)
        for class_id, x1, y1, x2, y2 in _xml_objects(os.path.join(voc_root, 'Annotations', f'{image_id}.xml')):
            filled[y1:y2 + 1, x1:x2 + 1] = class_id
        confusion += np.bincount(label.ravel().astype(np.int64) * 21 + filled.ravel(), minlength=441).reshape(21, 21)
    intersection = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = confusion.sum(1) > 0
    miou = float(np.mean(intersection[present] / union[present]))
    assert 0.3 < miou < 0.75


def test_same_seed_same_files_other_seed_differs(tmp_path):
    first = synthetic.make_demo_data(str(tmp_path / 'a'), num_coco=4, num_voc_train=3, num_voc_val=2, image_size=64)
    second = synthetic.make_demo_data(str(tmp_path / 'b'), num_coco=4, num_voc_train=3, num_voc_val=2, image_size=64)
    other = synthetic.make_demo_data(str(tmp_path / 'c'), num_coco=4, num_voc_train=3, num_voc_val=2,
                                     image_size=64, seed=1)
    for root_a, root_b in zip(first, second):
        for directory, _, files in os.walk(root_a):
            relative = os.path.relpath(directory, root_a)
            _, mismatch, errors = filecmp.cmpfiles(directory, os.path.join(root_b, relative), files, shallow=False)
            assert not mismatch and not errors
    json_path = os.path.join('annotations', 'instances_train2017.json')
    assert not filecmp.cmp(os.path.join(first[0], json_path), os.path.join(other[0], json_path), shallow=False)
    assert first[1].endswith(os.path.join('VOCdevkit', 'VOC2012'))
    assert os.path.isdir(os.path.join(first[1], 'JPEGImages'))


@pytest.mark.slow
def test_cli_writes_both_datasets(tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, '-m', 'datasets.synthetic', '--out', str(tmp_path), '--num_coco', '3',
                             '--num_voc_train', '2', '--num_voc_val', '1', '--image_size', '64'],
                            cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / 'coco' / 'annotations' / 'instances_train2017.json') as handle:
        assert len(json.load(handle)['images']) == 3
    assert len(os.listdir(tmp_path / 'VOCdevkit' / 'VOC2012' / 'JPEGImages')) == 3
