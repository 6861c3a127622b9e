"""utils/parseCOCO.py on a small COCO-format dataset whose expected label PNGs are computed by hand.

pycocotools rasterises an axis-aligned polygon with integer corners (x0, y0)-(x1, y1) to columns
x0..x1-1 and rows y0..y1-1, so rectangle polygons give exact expected masks."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from datasets.constants import COCO60_IDS, COCO_ID_TO_60, COCO_VOC_IDS
from utils.parseCOCO import parse_coco

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 60-class ids by the rule "non-VOC COCO ids sorted ascending -> 1..60":
# non-VOC ids start 8, 10, 11, 13, 14, 15, 22, ... and end with 90.
TRUCK, BENCH, ELEPHANT, TOOTHBRUSH = 8, 15, 22, 90
TRUCK60, BENCH60, ELEPHANT60, TOOTHBRUSH60 = 1, 6, 7, 60
PERSON, CAR = 1, 3  # VOC classes

IMAGE_SIZES = {1: (20, 30), 2: (10, 12), 3: (16, 16), 42: (12, 12)}  # id -> (height, width)


def rect(x0, y0, x1, y1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


# Crowd mask of image 42 as uncompressed (column-major) RLE: 5 off, 3 on, 10 off, 4 on, rest off.
CROWD_COUNTS = [5, 3, 10, 4, 144 - 22]


def crowd_mask():
    flat = np.zeros(144, np.uint8)
    flat[5:8] = 1
    flat[18:22] = 1
    return flat.reshape(12, 12, order='F')


def annotations():
    """(id, image, category, bbox [x, y, w, h], segmentation, iscrowd), in file order."""
    return [
        (101, 1, ELEPHANT, [2.4, 2.7, 22.9, 12.6], [rect(2, 2, 8, 6), rect(20, 10, 25, 15)], 0),
        (102, 2, PERSON, [1, 1, 4, 4], [rect(1, 1, 5, 5)], 0),
        (103, 1, PERSON, [0, 0, 30, 20], [rect(0, 0, 30, 20)], 0),
        (104, 1, TRUCK, [5, 4, 7, 6], [rect(5, 4, 12, 10)], 0),
        (105, 1, ELEPHANT, [10, 8, 5, 4], [rect(10, 8, 15, 12)], 0),
        (106, 1, TOOTHBRUSH, [26.0, 16.0, 4.0, 4.0], [rect(26, 16, 30, 20)], 0),
        (107, 42, CAR, [0, 0, 12, 12], [rect(0, 0, 12, 12)], 0),
        (108, 42, BENCH, [0, 5, 2, 5], {'counts': CROWD_COUNTS, 'size': [12, 12]}, 1),
        (109, 42, BENCH, [8, 8, 3, 3], [rect(8, 8, 11, 11)], 0),
        (110, 2, CAR, [6, 2, 3, 3], [rect(6, 2, 9, 5)], 0),
    ]


def write_coco(root, split='train2017'):
    """Write annotations/instances_<split>.json for the dataset above; returns the path."""
    images = [{'id': image_id, 'height': h, 'width': w, 'file_name': f'{image_id:012d}.jpg'}
              for image_id, (h, w) in IMAGE_SIZES.items()]
    anns = [{'id': ann_id, 'image_id': image_id, 'category_id': cat, 'bbox': bbox, 'segmentation': seg,
             'iscrowd': crowd, 'area': float(bbox[2] * bbox[3])}
            for ann_id, image_id, cat, bbox, seg, crowd in annotations()]
    categories = [{'id': cat, 'name': str(cat), 'supercategory': 'x'}
                  for cat in (PERSON, CAR, TRUCK, BENCH, ELEPHANT, TOOTHBRUSH)]
    path = os.path.join(root, 'annotations', f'instances_{split}.json')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump({'images': images, 'annotations': anns, 'categories': categories}, f)
    return path


def expected_labels():
    """Hand-computed {image id: (bbox60, seg60)} for the images that get PNGs."""
    bbox1 = np.zeros((20, 30), np.uint8)
    bbox1[2:16, 2:26] = ELEPHANT60     # 101: x 2.4..25.3 -> cols 2..25, y 2.7..15.3 -> rows 2..15
    bbox1[4:11, 5:13] = TRUCK60        # 104: cols 5..12, rows 4..10 (overwrites 101)
    bbox1[8:13, 10:16] = ELEPHANT60    # 105: cols 10..15, rows 8..12 (overwrites 104: annotation order)
    bbox1[16:20, 26:30] = TOOTHBRUSH60  # 106: x2 = 30 = width, y2 = 20 = height -> clipped
    seg1 = np.zeros((20, 30), np.uint8)
    seg1[2:6, 2:8] = ELEPHANT60        # both parts of 101 and all of 105 first ...
    seg1[10:15, 20:25] = ELEPHANT60
    seg1[8:12, 10:15] = ELEPHANT60
    seg1[4:10, 5:12] = TRUCK60         # ... then the truck overwrites them (category order, not annotation order)
    seg1[16:20, 26:30] = TOOTHBRUSH60
    bbox42 = np.zeros((12, 12), np.uint8)
    bbox42[5:11, 0:3] = BENCH60        # 108: cols 0..2, rows 5..10
    bbox42[8:12, 8:12] = BENCH60       # 109: cols 8..11, rows 8..11
    seg42 = np.zeros((12, 12), np.uint8)
    seg42[crowd_mask() > 0] = BENCH60
    seg42[8:11, 8:11] = BENCH60
    return {1: (bbox1, seg1), 42: (bbox42, seg42)}


def read_png(path):
    with Image.open(path) as image:
        assert image.mode == 'L'
        return np.array(image)


def test_sixty_class_mapping_rule():
    assert len(COCO60_IDS) == 60 and COCO60_IDS == tuple(sorted(COCO60_IDS))
    assert not set(COCO60_IDS) & COCO_VOC_IDS
    assert [COCO_ID_TO_60[c] for c in (TRUCK, BENCH, ELEPHANT, TOOTHBRUSH)] == [TRUCK60, BENCH60, ELEPHANT60,
                                                                                   TOOTHBRUSH60]
    assert COCO60_IDS[:7] == (8, 10, 11, 13, 14, 15, 22)


@pytest.mark.filterwarnings('ignore::DeprecationWarning')  # pycocotools vs NumPy 2 __array__(copy=...)
def test_crowd_rle_fixture_is_what_pycocotools_decodes():
    from pycocotools import mask as mask_utils
    decoded = mask_utils.decode(mask_utils.frPyObjects({'counts': CROWD_COUNTS, 'size': [12, 12]}, 12, 12))
    np.testing.assert_array_equal(decoded, crowd_mask())


def test_parse_coco_writes_exact_labels(tmp_path):
    write_coco(str(tmp_path))
    assert parse_coco(str(tmp_path)) == 2

    with open(tmp_path / 'annotations' / 'coco_train2017_bbox_annos.json') as f:
        bbox_annos = json.load(f)
    expected_json = {}
    for _, image_id, cat, (x, y, w, h), _, _ in annotations():
        expected_json.setdefault(str(image_id), []).append([x, y, x + w, y + h, cat])
    assert bbox_annos == expected_json
    assert list(bbox_annos) == ['1', '2', '42']  # order of "images"; image 3 has no annotations

    for image_id, (bbox60, seg60) in expected_labels().items():
        np.testing.assert_array_equal(read_png(tmp_path / 'train2017_bbox60' / f'{image_id:012d}.png'), bbox60)
        np.testing.assert_array_equal(read_png(tmp_path / 'train2017_seg60' / f'{image_id:012d}.png'), seg60)
    # image 2 has only VOC classes, image 3 no annotations: neither gets PNGs
    assert sorted(os.listdir(tmp_path / 'train2017_bbox60')) == ['000000000001.png', '000000000042.png']
    assert sorted(os.listdir(tmp_path / 'train2017_seg60')) == ['000000000001.png', '000000000042.png']


def test_parse_coco_other_split_and_no_leftover_tmp_files(tmp_path):
    write_coco(str(tmp_path), split='val2017')
    parse_coco(str(tmp_path), split='val2017')
    assert (tmp_path / 'annotations' / 'coco_val2017_bbox_annos.json').is_file()
    assert len(os.listdir(tmp_path / 'val2017_seg60')) == 2
    leftovers = [name for _, _, names in os.walk(tmp_path) for name in names if name.endswith('.tmp')]
    assert leftovers == []


def test_missing_annotation_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='instances_train2017.json'):
        parse_coco(str(tmp_path))


@pytest.mark.parametrize('content, problem', [
    ('{"images": [', 'malformed'),
    ('{"images": []}', 'annotations'),
    (json.dumps({'images': [{'id': 1, 'height': 4, 'width': 4}],
                 'annotations': [{'id': 7, 'image_id': 2, 'category_id': 8, 'bbox': [0, 0, 1, 1],
                                  'segmentation': []}]}), 'image 2'),
    (json.dumps({'images': [{'id': 1, 'height': 4, 'width': 4}],
                 'annotations': [{'id': 7, 'image_id': 1, 'category_id': 12, 'bbox': [0, 0, 1, 1],
                                  'segmentation': []}]}), 'category 12'),
])
def test_malformed_annotation_file_names_it(tmp_path, content, problem):
    path = tmp_path / 'annotations' / 'instances_train2017.json'
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(ValueError, match=problem) as error:
        parse_coco(str(tmp_path))
    assert str(path) in str(error.value)


def test_cli_runs_from_project_root(tmp_path):
    write_coco(str(tmp_path))
    result = subprocess.run([sys.executable, 'utils/parseCOCO.py', '--dataRoot', str(tmp_path)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    bbox60, seg60 = expected_labels()[42]
    np.testing.assert_array_equal(read_png(tmp_path / 'train2017_seg60' / '000000000042.png'), seg60)
