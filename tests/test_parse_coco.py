"""utils/parseCOCO.py on the small COCO-format dataset of conftest, whose expected label PNGs are
computed by hand."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from datasets.constants import COCO60_IDS, COCO_ID_TO_60, COCO_VOC_IDS
from tests.conftest import (
    BENCH,
    BENCH60,
    CROWD_COUNTS,
    ELEPHANT,
    ELEPHANT60,
    ROOT,
    TOOTHBRUSH,
    TOOTHBRUSH60,
    TRUCK,
    TRUCK60,
    annotations,
    crowd_mask,
    expected_labels,
    read_png,
    write_coco,
)
from utils.parseCOCO import parse_coco


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


@pytest.mark.slow
def test_cli_runs_from_project_root(tmp_path):
    write_coco(str(tmp_path))
    result = subprocess.run([sys.executable, 'utils/parseCOCO.py', '--dataRoot', str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    bbox60, seg60 = expected_labels()[42]
    np.testing.assert_array_equal(read_png(tmp_path / 'train2017_seg60' / '000000000042.png'), seg60)
