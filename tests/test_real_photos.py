"""benchmarks/real_photos.py: end to end on tiny generated data (an auxiliary COCO root, a VOC target, rounds 1 and
2), and its one-json form's sides."""
import json
import os

import pytest
import torch

from benchmarks import real_photos
from datasets.constants import COCO_VOC_IDS
from datasets.synthetic import make_demo_data
from datasets.synthetic.coco_format import make_coco_like
from models import DeepLabLargeFOV
from tests.conftest import run
from utils.engine.checkpoint import save_checkpoint

TINY = ['--crop_size', 128, '--test_size', 128, '--baselines', 'box', '--cuda', 'false', '--workers', 0]


def random_backbone(path, num_classes):
    torch.manual_seed(0)
    return str(save_checkpoint(path, **DeepLabLargeFOV(num_classes).state_dict()))


@pytest.mark.slow  # trains two generators and runs every step in a subprocess (about a minute on 2 cores)
def test_aux_root_and_voc_target(tmp_path):
    coco, voc = make_demo_data(str(tmp_path / 'data'), num_coco=12, num_voc_train=4, num_voc_val=2, image_size=64,
                               seed=1)
    categories = json.load(open(os.path.join(coco, 'annotations', 'instances_train2017.json')))['categories']
    kept = [cat for cat in categories if cat['id'] not in COCO_VOC_IDS]  # the auxiliary backbone's classes
    out = tmp_path / 'out'
    log = run('benchmarks/real_photos.py', '--aux', coco, '--target', voc, '--out', out, '--iterations', 4,
              '--curve_points', 2, '--aux_backbone', random_backbone(tmp_path / 'aux.pth', len(kept) + 1),
              '--target_backbone', random_backbone(tmp_path / 'voc.pth', 21), '--round2_iterations', 2, *TINY)
    result = json.load(open(out / 'real_photos.json'))
    assert list(result['methods']) == ['box', 'lpg_round1', 'lpg_round2']
    round2 = json.load(open(out / 'lpg' / 'Round_2' / 'record.json'))['identity']
    assert round2['settings']['round'] == 2 and round2['inputs']['init_lpg_model']['path'].endswith('LPG_Round1.pth')
    assert result['methods']['box']['fg recall in boxes'] == 1.0  # a filled box misses nothing inside itself
    assert [point['iterations'] for point in result['curve']] == [2, 4]
    assert result['curve'][-1] == result['methods']['lpg_round1']  # the last point is the trained generator
    # the VOC classes of the generated COCO file are left out of the generator's training
    train_log = open(out / 'logs' / 'round_1_train_LPG.log').read()
    assert '--exclude_categories' in log and 'person' in log.split('--exclude_categories')[1].split('--')[0]
    assert 'iter 4/4' in train_log
    assert '| LPG round 1 |' in log and '| filled boxes |' in log


def test_one_json_form_splits_the_file_and_points_each_step_at_its_side(tmp_path):
    root = make_coco_like(str(tmp_path / 'coco'), 24, 64, 3)
    images = os.path.join(root, 'train2017')
    args = real_photos.get_args_parser().parse_args([
        '--coco_json', os.path.join(root, 'annotations', 'instances_train2017.json'), '--image_dir', images,
        '--out', str(tmp_path / 'out')])
    sides = real_photos.Sides(args)
    aux, target = (json.load(open(tmp_path / 'out' / 'split' / name)) for name in ('auxiliary.json', 'target.json'))
    assert not {i['id'] for i in aux['images']} & {i['id'] for i in target['images']}
    assert all(a['category_id'] not in COCO_VOC_IDS for a in aux['annotations'])
    assert (sides.aux_json, sides.aux_images) == (str(tmp_path / 'out' / 'split' / 'auxiliary.json'), images)
    target_source = dict(annotations=str(tmp_path / 'out' / 'split' / 'target.json'), image_dir=images)
    assert sides.generate() == dict(dataset='custom', **target_source) == sides.score()
