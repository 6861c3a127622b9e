"""The fault suite, training guards: a loss that is not finite stops the run (or skips, up to a limit) and keeps
the last good checkpoint; non-finite weights are refused; old snapshots are pruned; a batch that cannot train batch
norm and a checkpoint of another network are refused in a short message."""
import json
import os
import subprocess
import sys

import pytest

import main as train_backbone
import test as test_backbone
import trainLPG
from datasets.synthetic import make_custom_data
from models import DeepLabLargeFOV, LPGNet
from tests.conftest import ROOT, cli
from tests.faults import CPU, backbone_flags
from utils.engine import layout
from utils.engine.checkpoint import load_checkpoint, save_checkpoint


# ---------------------------------------------------------------------------------------------- training guards
def test_nan_stops_and_leaves_the_last_good_checkpoint_byte_identical(data, tmp_path, monkeypatch):
    save = tmp_path / 'run'
    flags = backbone_flags(data, save, '--lr', 1e10, '--num_save_model', 1)
    assert cli(train_backbone, *flags, '--num_iterations', 1, monkeypatch=monkeypatch)[0] == 0
    good = {path: open(path, 'rb').read()
            for path in (layout.last_checkpoint(save), layout.backbone_weights(save, 'vgg16'))}
    status, message = cli(train_backbone, *flags, '--num_iterations', 6, '--resume', monkeypatch=monkeypatch)
    assert status == 1 and 'the loss is not finite' in message and 'iteration 2' in message
    assert {path: open(path, 'rb').read() for path in good} == good
    assert sorted(os.listdir(save)) == ['checkpoint_last.pth', 'loss_curve.png', 'loss_log.csv', 'record.json',
                                        'vgg16_final.pth', 'vgg16_iter1.pth']


def test_nan_skip_has_a_limit(data, tmp_path, monkeypatch):
    status, message = cli(train_backbone, *backbone_flags(data, tmp_path / 'run', '--lr', 1e10, '--num_iterations', 6,
                                                          '--on_nan', 'skip', '--max_nan_skips', 2),
                          monkeypatch=monkeypatch)
    assert status == 1 and 'after skipping 2 batches (--max_nan_skips 2)' in message
    assert not os.path.exists(tmp_path / 'run' / 'vgg16_final.pth')


def test_test_py_refuses_non_finite_weights(data, tmp_path, monkeypatch):
    state = DeepLabLargeFOV(num_classes=21).state_dict()
    state['features.38.bias'][3] = float('nan')
    save_checkpoint(tmp_path / 'nan.pth', **state)
    status, message = cli(test_backbone, '--type', 'test', '--root_path', data['voc'], '--model_path',
                          tmp_path / 'nan.pth', '--save_path', tmp_path / 'eval', *CPU, monkeypatch=monkeypatch)
    assert status == 1 and 'non-finite weights' in message and 'nan.pth' in message
    assert not os.path.exists(layout.scores_file(str(tmp_path / 'eval'), 'test'))


def test_main_keeps_the_last_k_snapshots(data, tmp_path, monkeypatch):
    save = tmp_path / 'run'
    assert cli(train_backbone, *backbone_flags(data, save, '--num_iterations', 4, '--num_save_model', 1,
                                               '--keep_checkpoints', 2), monkeypatch=monkeypatch)[0] == 0
    assert sorted(name for name in os.listdir(save) if '_iter' in name) == ['vgg16_iter3.pth', 'vgg16_iter4.pth']


def test_resuming_another_network_gives_a_short_summary(data, tmp_path, monkeypatch):
    save = tmp_path / 'run'
    assert cli(train_backbone, *backbone_flags(data, save, '--num_iterations', 1), monkeypatch=monkeypatch)[0] == 0
    state = load_checkpoint(layout.last_checkpoint(save))
    state['model'] = LPGNet(in_channels=4).state_dict()
    save_checkpoint(layout.last_checkpoint(save), **state)
    status, message = cli(train_backbone, *backbone_flags(data, save, '--num_iterations', 2, '--resume'),
                          monkeypatch=monkeypatch)
    assert status == 1 and 'another network' in message and 'missing keys (32)' in message and len(message) < 1500


# ---------------------------------------------------------------------------------------------- batches
def one_sample_set(tmp_path):
    """A custom auxiliary set of one image with one annotation: one (image, class) LPG sample."""
    sets = make_custom_data(str(tmp_path / 'custom'), num_images=2, image_size=64, seed=3)
    annotations, image_dir = sets['aux']
    data = json.load(open(annotations))
    first = data['annotations'][0]
    data['images'] = [image for image in data['images'] if image['id'] == first['image_id']]
    data['annotations'] = [first]
    path = tmp_path / 'one.json'
    path.write_text(json.dumps(data))
    return ['--dataset', 'custom', '--annotations', path, '--image_dir', image_dir]


@pytest.mark.slow
def test_a_set_that_fills_no_batch_stops_at_once(tmp_path):
    """One sample and --batch_size 8: the lone sample is left out (batch norm needs two), so the loader yields no
    batch; the run stops with the count and the flag instead of waiting for a batch forever."""
    flags = one_sample_set(tmp_path) + ['--round', 1, '--model_save_path', tmp_path / 'lpg', '--batch_size', 8,
                                        '--crop_size', 128, '--num_max_iterations', 2, *CPU]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'trainLPG.py')] + [str(f) for f in flags], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert '1 training sample(s) with --batch_size 8: the loader yields no batch' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not os.path.exists(layout.lpg_weights(str(tmp_path / 'lpg'), 1))
    assert not os.path.exists(layout.last_checkpoint(layout.lpg_dir(str(tmp_path / 'lpg'), 1)))


def test_a_batch_of_one_is_refused_where_batch_norm_trains(data, tmp_path, monkeypatch):
    status, message = cli(trainLPG, '--coco_root_dir', data['coco'], '--round', 1, '--model_save_path',
                          tmp_path / 'lpg', '--batch_size', 1, '--crop_size', 128, '--num_max_iterations', 1, *CPU,
                          monkeypatch=monkeypatch)
    assert status == 2 and message.startswith('trainLPG: error: argument --batch_size: 1 is outside the values that '
                                              'work: an integer from 2 to 4096')
    assert not os.path.exists(layout.lpg_dir(str(tmp_path / 'lpg'), 1))
