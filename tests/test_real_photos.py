"""benchmarks/real_photos.py end to end on tiny generated data, in both of its forms: an auxiliary COCO root with a
VOC target, and one COCO json split into the two sides."""
import json
import os

import pytest

from datasets.constants import COCO_VOC_IDS
from datasets.synthetic import make_demo_data
from datasets.synthetic.coco_format import make_coco_like
from tests.conftest import run

pytestmark = pytest.mark.slow  # trains a generator and runs every method (about a minute on 2 cores)

TINY = ['--crop_size', 128, '--test_size', 128, '--baselines', 'box,crf', '--cuda', 'false', '--workers', 0]


def test_aux_root_and_voc_target(tmp_path):
    coco, voc = make_demo_data(str(tmp_path / 'data'), num_coco=12, num_voc_train=4, num_voc_val=2, image_size=64,
                               seed=1)
    out = tmp_path / 'out'
    log = run('benchmarks/real_photos.py', '--aux', coco, '--target', voc, '--out', out, '--iterations', 4,
              '--curve_points', 2, *TINY)
    result = json.load(open(out / 'real_photos.json'))
    assert list(result['methods']) == ['box', 'crf', 'lpg_round1']
    assert result['methods']['box']['fg recall in boxes'] == 1.0  # a filled box misses nothing inside itself
    assert [point['iterations'] for point in result['curve']] == [2, 4]
    assert result['curve'][-1] == result['methods']['lpg_round1']  # the last point is the trained generator
    # the VOC classes of the generated COCO file are left out of the generator's training
    train_log = open(out / 'logs' / 'round_1_train_LPG.log').read()
    assert '--exclude_categories' in log and 'person' in log.split('--exclude_categories')[1].split('--')[0]
    assert 'iter 4/4' in train_log
    assert '| LPG round 1 |' in log and '| filled boxes |' in log


def test_one_json_split_into_both_sides(tmp_path):
    root = make_coco_like(str(tmp_path / 'coco'), 24, 64, 3)
    out = tmp_path / 'out'
    run('benchmarks/real_photos.py', '--coco_json', os.path.join(root, 'annotations', 'instances_train2017.json'),
        '--image_dir', os.path.join(root, 'train2017'), '--out', out, '--iterations', 2, '--curve_points', 1, *TINY)
    aux, target = (json.load(open(out / 'split' / name)) for name in ('auxiliary.json', 'target.json'))
    assert not {i['id'] for i in aux['images']} & {i['id'] for i in target['images']}
    assert all(a['category_id'] not in COCO_VOC_IDS for a in aux['annotations'])
    result = json.load(open(out / 'real_photos.json'))
    assert list(result['methods']) == ['box', 'crf', 'lpg_round1'] and len(result['curve']) == 1
    assert result['methods']['box']['fg recall in boxes'] == 1.0
