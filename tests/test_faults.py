"""The fault suite: faults a user meets in multi-day jobs, each built in tmp_path. Every case asserts the
message, the exit status and that nothing written earlier was lost."""
import argparse
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

import genPseudoMasks
import main as train_backbone
import run_rounds
import test as test_backbone
import trainLPG
from datasets import files as file_io  # the file-system side: atomic writes, folder locks
from datasets.boxes import BoxImage, box_mask, downscaled, restore_size
from datasets.coco_json import load_instances
from datasets.errors import InputError
from datasets.io import save_palette_png
from datasets.synthetic import make_custom_data, make_demo_data
from datasets.voc import read_split, split_file, voc_box_items
from models import DeepLabLargeFOV, LPGNet
from tests.conftest import ROOT, cli, write_coco
from utils import imagenet_init, parseCOCO, pseudo_masks
from utils.engine import layout
from utils.engine.checkpoint import load_checkpoint, save_checkpoint
from utils.engine.layout import RunLayout
from utils.engine.runtime import run_script

CPU = ['--cuda', 'false', '--workers', 0, '--amp', 'off']  # float32: these tests compare outputs exactly


ONE_THREAD = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')  # runs compared bit for bit: one thread


def spawn(script, *flags):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, script)] + [str(f) for f in flags], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ONE_THREAD)


def run_to_end(script, *flags):
    """Run a script as spawn does (one thread), to the end; returns its output."""
    done = subprocess.run([sys.executable, os.path.join(ROOT, script)] + [str(f) for f in flags], cwd=ROOT,
                          capture_output=True, text=True, env=ONE_THREAD)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout + done.stderr


def kill_when(process, condition, timeout=120, sig=signal.SIGKILL):
    """Send `sig` to `process` as soon as condition() holds; returns whether it was still running then."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if condition():
            process.send_signal(sig)
            process.wait()
            return True
        time.sleep(0.01)
    process.wait()
    return False


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    """Small generated COCO (parsed) and VOC datasets, copied per test by `data`."""
    root = tmp_path_factory.mktemp('faults')
    coco, voc = make_demo_data(str(root / 'data'), num_coco=12, num_voc_train=6, num_voc_val=3, image_size=64, seed=4)
    parseCOCO.parse_coco(coco)
    return root / 'data'


@pytest.fixture
def data(source, tmp_path):
    shutil.copytree(source, tmp_path / 'data')
    return dict(coco=str(tmp_path / 'data' / 'coco'), voc=str(tmp_path / 'data' / 'VOCdevkit' / 'VOC2012'))


def backbone_flags(data, save, *extra):
    return ['--root_path', data['voc'], '--label_path_name', 'SegmentationClassAug', '--save_path', save,
            '--from_scratch', '--batch_size', 2, '--crop_size', 33, *extra, *CPU]


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


# ---------------------------------------------------------------------------------------------- honest resume
@pytest.mark.slow
def test_a_rerun_without_resume_refuses_to_restart(data, tmp_path, monkeypatch):
    save = tmp_path / 'run'
    flags = backbone_flags(data, save, '--num_iterations', 3, '--num_save_model', 1)
    assert cli(train_backbone, *flags[:-4], '--num_iterations', 1, *flags[-4:], monkeypatch=monkeypatch)[0] == 0
    before = open(layout.last_checkpoint(save), 'rb').read()
    status, message = cli(train_backbone, *flags, monkeypatch=monkeypatch)
    assert status == 1 and '--resume' in message and '--overwrite' in message
    assert open(layout.last_checkpoint(save), 'rb').read() == before
    assert cli(train_backbone, *flags, '--resume', monkeypatch=monkeypatch)[0] == 0
    assert load_checkpoint(layout.last_checkpoint(save))['iteration'] == 3
    assert cli(train_backbone, *flags, '--overwrite', '--num_save_model', 10, monkeypatch=monkeypatch)[0] == 0
    assert sorted(os.listdir(save)) == ['checkpoint_last.pth', 'loss_curve.png', 'loss_log.csv', 'record.json',
                                        'vgg16_final.pth']  # the old snapshots are gone


def test_run_rounds_saves_lpg_snapshots_along_the_way(tmp_path):
    args = run_rounds.get_args_parser().parse_args(['--voc_root_dir', 'v', '--coco_root_dir', 'c', '--work_dir',
                                                    str(tmp_path), '--lpg_iterations', '100', '--from_scratch'])
    runner = run_rounds.Runner(args)
    steps = []
    runner.step = lambda name, script, flags: steps.append([str(f) for f in flags])
    run_rounds.run_round(runner, 1, RunLayout(tmp_path), last_round=True)
    lpg = steps[0]
    assert lpg[lpg.index('--num_save_model') + 1] == '10' and '--resume' in lpg


@pytest.mark.slow
def test_kill_9_then_resume(data, tmp_path):
    flags = ['--coco_root_dir', data['coco'], '--round', 1, '--model_save_path', tmp_path, '--batch_size', 2,
             '--crop_size', 128, '--num_save_model', 1, '--resume', *CPU]
    last = layout.last_checkpoint(layout.lpg_dir(str(tmp_path), 1))
    process = spawn('trainLPG.py', *flags, '--num_max_iterations', 50)
    assert kill_when(process, lambda: os.path.exists(last)), 'the run ended before it could be killed'
    saved = load_checkpoint(last)
    # Resuming to the saved iteration trains nothing: the final weights are the checkpoint's.
    done = subprocess.run([sys.executable, os.path.join(ROOT, 'trainLPG.py'), *map(str, flags),
                           '--num_max_iterations', str(saved['iteration'])], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    final = load_checkpoint(layout.lpg_weights(str(tmp_path), 1))
    assert all(torch.equal(final[k], v) for k, v in saved['model'].items())
    done = subprocess.run([sys.executable, os.path.join(ROOT, 'trainLPG.py'), *map(str, flags),
                           '--num_max_iterations', str(saved['iteration'] + 2)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and f'resumed from {last} at iteration {saved["iteration"]}' in done.stdout
    assert load_checkpoint(last)['iteration'] == saved['iteration'] + 2
    assert not [name for name in os.listdir(os.path.dirname(last)) if name.endswith('.tmp')]


def same_weights(path_a, path_b):
    a, b = load_checkpoint(path_a), load_checkpoint(path_b)
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


@pytest.mark.slow
@pytest.mark.parametrize('script', ['trainLPG.py', 'main.py'])
def test_a_run_killed_after_its_first_snapshot_resumes_to_the_weights_of_the_whole_run(data, tmp_path, script):
    """Resume continues the interrupted run's own sequence (data order, augmentation, dropout, every random
    state), so its weights are those of the run that was never interrupted, bit for bit. The generator reads
    its samples in a loader worker, whose random state is nobody's: each sample's augmentation is seeded by its
    place in the run."""
    def flags(folder):
        if script == 'trainLPG.py':
            return ['--coco_root_dir', data['coco'], '--round', 1, '--model_save_path', folder, '--batch_size', 2,
                    '--crop_size', 128, '--num_max_iterations', 6, '--num_save_model', 2, '--seed', 3,
                    '--deterministic', *CPU[:2], '--workers', 1, *CPU[4:]]
        return backbone_flags(data, folder, '--num_iterations', 8, '--num_save_model', 2, '--seed', 5,
                              '--deterministic')

    def weights(folder):
        return (layout.lpg_weights(str(folder), 1) if script == 'trainLPG.py'
                else layout.backbone_weights(str(folder), 'vgg16'))
    run_to_end(script, *flags(tmp_path / 'whole'))
    last = layout.last_checkpoint(os.path.dirname(weights(tmp_path / 'cut')))
    process = spawn(script, *flags(tmp_path / 'cut'))
    assert kill_when(process, lambda: os.path.exists(last)), 'the run ended before it could be killed'
    assert not os.path.exists(weights(tmp_path / 'cut'))
    log = run_to_end(script, *flags(tmp_path / 'cut'), '--resume')
    assert f'resumed from {last} at iteration' in log
    assert same_weights(weights(tmp_path / 'cut'), weights(tmp_path / 'whole'))


# ---------------------------------------------------------------------------------------------- completion records
@pytest.mark.slow
def test_interrupted_parse_coco_resumes_to_the_same_outputs(tmp_path):
    root = tmp_path / 'coco'
    make_demo_data(str(tmp_path / 'gen'), num_coco=400, num_voc_train=1, num_voc_val=1, image_size=48, seed=1)
    shutil.copytree(tmp_path / 'gen' / 'coco' / 'annotations', root / 'annotations')
    reference = tmp_path / 'reference'
    shutil.copytree(root, reference)
    parseCOCO.parse_coco(str(reference))
    annos = os.path.join(root, 'annotations', 'coco_train2017_bbox_annos.json')
    masks = root / 'train2017_seg60'
    process = spawn('utils/parseCOCO.py', '--dataRoot', root)
    assert kill_when(process, lambda: masks.is_dir() and len(os.listdir(masks)) > 3)
    assert not os.path.exists(annos), 'the box json is written last'
    assert not parseCOCO.step_done(parseCOCO.get_args_parser().parse_args(['--dataRoot', str(root)]))
    parseCOCO.parse_coco(str(root))
    for folder in ('train2017_seg60', 'train2017_bbox60'):
        names = sorted(os.listdir(reference / folder))
        assert names == sorted(os.listdir(root / folder)) and len(names) > 100
        assert all(open(reference / folder / n, 'rb').read() == open(root / folder / n, 'rb').read() for n in names)
    assert open(annos).read() == open(reference / 'annotations' / 'coco_train2017_bbox_annos.json').read()


def generation_flags(data, lpg_path, out, *extra):
    return ['--dataset', 'voc', '--round', 1, '--model_path_test', lpg_path, '--voc_root_dir', data['voc'],
            '--voc_proposals_dir', out, '--voc_test_size', 128, '--image_batch_size', 1, *extra, *CPU]


@pytest.fixture
def lpg_path(tmp_path):
    torch.manual_seed(0)
    return str(save_checkpoint(tmp_path / 'LPG_Round1.pth', **LPGNet(in_channels=4).state_dict()))


def pngs(folder):
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return {name: np.asarray(Image.open(os.path.join(folder, name))) for name in names if name.endswith('.png')}


@pytest.mark.slow
def test_interrupted_generation_resumes_to_the_same_masks(data, lpg_path, tmp_path, monkeypatch, capsys):
    assert cli(genPseudoMasks, *generation_flags(data, lpg_path, tmp_path / 'whole', '--voc_test_size', 512),
               monkeypatch=monkeypatch)[0] == 0
    out = layout.pseudo_mask_dir(str(tmp_path / 'cut'), 'lpg', 'vgg16', 1)
    process = spawn('genPseudoMasks.py', *generation_flags(data, lpg_path, tmp_path / 'cut', '--voc_test_size', 512))
    assert kill_when(process, lambda: len(pngs(out)) >= 1)
    assert len(pngs(out)) < 6
    capsys.readouterr()
    assert cli(genPseudoMasks, *generation_flags(data, lpg_path, tmp_path / 'cut', '--voc_test_size', 512),
               monkeypatch=monkeypatch)[0] == 0
    assert 'already done' in capsys.readouterr().out
    whole = pngs(layout.pseudo_mask_dir(str(tmp_path / 'whole'), 'lpg', 'vgg16', 1))
    cut = pngs(out)
    assert whole.keys() == cut.keys() and all(np.array_equal(whole[k], cut[k]) for k in whole)


def test_masks_of_another_model_are_not_reused(data, lpg_path, tmp_path, monkeypatch):
    flags = generation_flags(data, lpg_path, tmp_path / 'out')
    assert cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)[0] == 0
    out = layout.pseudo_mask_dir(str(tmp_path / 'out'), 'lpg', 'vgg16', 1)
    before = pngs(out)
    other = tmp_path / 'other.pth'
    other.write_bytes(os.urandom(4096))
    status, message = cli(genPseudoMasks, *generation_flags(data, other, tmp_path / 'out'), monkeypatch=monkeypatch)
    assert status == 1 and 'other --model_path_test, lpg' in message and '--overwrite' in message
    assert pngs(out).keys() == before.keys() and all(np.array_equal(pngs(out)[k], before[k]) for k in before)
    status, message = cli(genPseudoMasks, *generation_flags(data, other, tmp_path / 'out', '--overwrite'),
                          monkeypatch=monkeypatch)
    assert status == 1 and 'is not a checkpoint' in message  # random bytes: read, and refused as such


def test_logits_of_another_model_are_not_reused(data, tmp_path, monkeypatch):
    model = tmp_path / 'vgg16_final.pth'
    torch.manual_seed(0)
    save_checkpoint(model, **DeepLabLargeFOV(num_classes=21).state_dict())
    flags = ['--type', 'test', '--root_path', data['voc'], '--model_path', model, '--test_size', 65, *CPU]
    assert cli(test_backbone, *flags, monkeypatch=monkeypatch)[0] == 0
    scores = layout.scores_file(layout.eval_dir(str(model), 'val'), 'test')
    before = open(scores).read()
    torch.manual_seed(1)
    save_checkpoint(model, **DeepLabLargeFOV(num_classes=21).state_dict())  # retrained at the same path
    status, message = cli(test_backbone, *flags, monkeypatch=monkeypatch)
    assert status == 1 and 'other model' in message and '--overwrite' in message
    assert open(scores).read() == before
    assert cli(test_backbone, *flags, '--overwrite', monkeypatch=monkeypatch)[0] == 0
    assert open(scores).read() != before


def test_leftover_temporary_files_are_removed_at_the_next_start(data, tmp_path, monkeypatch):
    save = tmp_path / 'run'
    flags = backbone_flags(data, save, '--num_iterations', 1)
    assert cli(train_backbone, *flags, monkeypatch=monkeypatch)[0] == 0
    leftover = save / f'.checkpoint_last.pth.{"0" * 32}.tmp'
    leftover.write_bytes(b'half a checkpoint')
    assert cli(train_backbone, *flags[:-4], '--num_iterations', 2, '--resume', *flags[-4:],
               monkeypatch=monkeypatch)[0] == 0
    assert not leftover.exists()


# ---------------------------------------------------------------------------------------------- up-front validation
def test_bad_training_data_is_reported_at_once_before_training(data, tmp_path, monkeypatch, capsys):
    ids = read_split(split_file(data['voc'], 'train_aug'))
    os.remove(os.path.join(data['voc'], 'JPEGImages', f'{ids[0]}.jpg'))
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(os.path.join(data['voc'], 'SegmentationClassAug', f'{ids[1]}.png'))
    flags = backbone_flags(data, tmp_path / 'run', '--num_iterations', 1)
    status, message = cli(train_backbone, *flags, monkeypatch=monkeypatch)
    assert status == 1 and '2 of 6 training images are bad' in message
    assert f'{ids[0]}.jpg' in message and f'{ids[1]}.png is 7x5' in message and '--skip_bad' in message
    assert not os.path.exists(layout.last_checkpoint(str(tmp_path / 'run')))
    assert cli(train_backbone, *flags, '--skip_bad', '--overwrite', monkeypatch=monkeypatch)[0] == 0
    assert '--skip_bad: leaving out 2 of 6 training images' in capsys.readouterr().out


def test_degenerate_coco_boxes_are_reported(data, tmp_path, monkeypatch):
    annos_path = os.path.join(data['coco'], 'annotations', 'coco_train2017_bbox_annos.json')
    import json
    annos = json.load(open(annos_path))
    image_id, boxes = next((key, boxes) for key, boxes in annos.items()
                           if os.path.exists(os.path.join(data['coco'], 'train2017_seg60', f'{int(key):012d}.png')))
    x1, y1, x2, y2, cat = next(box for box in boxes if box[4] not in (1, 18))  # a non-VOC category
    boxes.append([x1, y1, x1, y2, cat])  # zero width
    json.dump(annos, open(annos_path, 'w'))
    status, message = cli(trainLPG, '--coco_root_dir', data['coco'], '--round', 1, '--model_save_path', tmp_path,
                          '--crop_size', 128, '--batch_size', 2, '--num_max_iterations', 1, *CPU,
                          monkeypatch=monkeypatch)
    assert status == 1 and annos_path in message and f'image {image_id}' in message and 'has no area' in message


# ---------------------------------------------------------------------------------------------- batch jobs go on
def test_a_truncated_jpeg_fails_and_the_others_are_written(data, lpg_path, tmp_path, monkeypatch, capsys):
    ids = read_split(split_file(data['voc'], 'train_aug'))
    jpeg = os.path.join(data['voc'], 'JPEGImages', f'{ids[2]}.jpg')
    content = open(jpeg, 'rb').read()
    open(jpeg, 'wb').write(content[:len(content) // 2])
    flags = generation_flags(data, lpg_path, tmp_path / 'out')
    status, message = cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)
    assert status == 1 and f'{ids[2]}: image file {jpeg} is truncated' in message
    out = layout.pseudo_mask_dir(str(tmp_path / 'out'), 'lpg', 'vgg16', 1)
    assert sorted(pngs(out)) == sorted(f'{i}.png' for i in ids if i != ids[2])
    assert '6 images: 5 written, 0 already done, 1 failed' in capsys.readouterr().out
    open(jpeg, 'wb').write(content)  # repaired: the rerun makes the missing mask only
    assert cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)[0] == 0
    assert len(pngs(out)) == 6 and '6 images, 5 already done' in capsys.readouterr().out


def test_ground_truth_of_another_size_is_never_scored_on_a_crop(data, tmp_path, monkeypatch):
    ids = read_split(split_file(data['voc'], 'val'))
    Image.fromarray(np.zeros((60, 64), np.uint8)).save(os.path.join(data['voc'], 'SegmentationClass', f'{ids[0]}.png'))
    model = tmp_path / 'vgg16_final.pth'
    save_checkpoint(model, **DeepLabLargeFOV(num_classes=21).state_dict())
    status, message = cli(test_backbone, '--type', 'test', '--root_path', data['voc'], '--model_path', model,
                          '--test_size', 65, *CPU, monkeypatch=monkeypatch)
    # Read in the frame of its ground truth, the image contradicts it: no logits, and the message says why.
    assert status == 1 and f'{ids[0]}: no logits: image file' in message
    assert f'{ids[0]}.jpg is 64x64, but its label' in message and f'{ids[0]}.png is 64x60' in message
    scores = load_json(layout.scores_file(layout.eval_dir(str(model), 'val'), 'test'))
    assert scores['num_scored'] == 2 and list(scores['failed']) == [ids[0]]


def test_a_bad_polygon_names_annotation_and_file_and_the_rest_is_parsed(tmp_path, monkeypatch):
    path = write_coco(str(tmp_path))
    import json
    instances = json.load(open(path))
    instances['annotations'][3]['segmentation'] = [[1.0, 2.0]]  # annotation 104 (image 1): not a polygon
    json.dump(instances, open(path, 'w'))
    status, message = cli(parseCOCO, '--dataRoot', tmp_path, monkeypatch=monkeypatch)
    assert status == 1 and 'annotation 104' in message and path in message and 'image 1' in message
    assert os.listdir(tmp_path / 'train2017_seg60') == ['000000000042.png']  # the other image is written


# ---------------------------------------------------------------------------------------------- inputs stay inside
@pytest.mark.parametrize('bad_id', ['../../escaped', '/tmp/escaped', 'a/b'])
def test_ids_cannot_escape_their_folders(data, lpg_path, tmp_path, monkeypatch, bad_id):
    ids_file = tmp_path / 'ids.txt'
    ids_file.write_text(f'{read_split(split_file(data["voc"], "val"))[0]}\n{bad_id}\n')
    status, message = cli(genPseudoMasks, *generation_flags(data, lpg_path, tmp_path / 'out', '--split_file', ids_file),
                          monkeypatch=monkeypatch)
    assert status == 1 and repr(bad_id) in message and 'line 2' in message
    status, message = cli(test_backbone, '--type', 'masks', '--root_path', data['voc'], '--pred_dir', tmp_path,
                          '--split_file', ids_file, *CPU, monkeypatch=monkeypatch)
    assert status == 1 and repr(bad_id) in message
    assert not os.path.exists(tmp_path / 'escaped') and not os.path.exists('/tmp/escaped.png')


def test_duplicate_ids_are_used_once_with_a_warning(tmp_path):
    (tmp_path / 'ids.txt').write_text('a\nb\na\n')
    with pytest.warns(UserWarning, match='1 repeated image ids'):
        assert read_split(str(tmp_path / 'ids.txt')) == ['a', 'b']


# ---------------------------------------------------------------------------------------------- messages
def test_random_bytes_are_not_a_checkpoint(tmp_path, monkeypatch):
    (tmp_path / 'random.pth').write_bytes(os.urandom(1000))
    status, message = cli(imagenet_init, '--arch', 'vgg16', '--src', tmp_path / 'random.pth', '--dst',
                          tmp_path / 'out.pth', monkeypatch=monkeypatch)
    assert status == 1
    assert message == f'error: {tmp_path / "random.pth"} is not a checkpoint (not a file written by torch.save)'


def test_resuming_another_network_gives_a_short_summary(data, tmp_path, monkeypatch):
    save = tmp_path / 'run'
    assert cli(train_backbone, *backbone_flags(data, save, '--num_iterations', 1), monkeypatch=monkeypatch)[0] == 0
    state = load_checkpoint(layout.last_checkpoint(save))
    state['model'] = LPGNet(in_channels=4).state_dict()
    save_checkpoint(layout.last_checkpoint(save), **state)
    status, message = cli(train_backbone, *backbone_flags(data, save, '--num_iterations', 2, '--resume'),
                          monkeypatch=monkeypatch)
    assert status == 1 and 'another network' in message and 'missing keys (32)' in message and len(message) < 1500


def test_a_full_disk_says_so_and_keeps_the_earlier_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / 'checkpoint_last.pth'
    save_checkpoint(path, step=1, weights=torch.zeros(10))
    before = path.read_bytes()

    class FullDisk:
        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 100:
                raise OSError(errno.ENOSPC, 'No space left on device')
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

    real_open = open
    monkeypatch.setattr(file_io, 'open', lambda *a, **k: FullDisk(real_open(*a, **k)), raising=False)
    with pytest.raises(OSError, match='no space left on device while writing .*checkpoint_last.pth \\(the earlier '
                                      'file is intact\\)'):
        save_checkpoint(path, step=2, weights=torch.zeros(100000))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ['checkpoint_last.pth']


@pytest.mark.parametrize('script, flags, expected', [
    (parseCOCO, ['--dataRoot', '{tmp}'], 'COCO annotation file not found'),
    (imagenet_init, ['--arch', 'resnet101', '--src', '{tmp}/none.pth', '--dst', '{tmp}/x.pth'], 'checkpoint not found'),
    (run_rounds, ['--voc_root_dir', '{tmp}', '--coco_root_dir', '{tmp}', '--work_dir', '{tmp}/w', '--from_scratch'],
     'no PASCAL VOC 2012 found'),
])
def test_command_line_tools_report_bad_input_in_one_line(tmp_path, monkeypatch, script, flags, expected):
    status, message = cli(script, *[f.format(tmp=tmp_path) for f in flags], monkeypatch=monkeypatch)
    assert status == 1 and expected in message and 'Traceback' not in message and message.count('\n') == 0


def load_json(path):
    import json
    with open(path) as handle:
        return json.load(handle)


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
    assert status == 1 and message == ('error: --batch_size 1 gives 1 sample per step: this network trains batch norm, '
                                       'which needs at least 2 samples per process')
    assert not os.path.exists(layout.lpg_dir(str(tmp_path / 'lpg'), 1))


def test_a_mask_value_beyond_the_classes_is_not_scored_as_a_class(data, tmp_path, monkeypatch):
    """A VOC mask holding 37 (21 classes): the confusion matrix would count it in another cell, so scoring stops
    naming the file and the value."""
    pred = tmp_path / 'masks'
    shutil.copytree(os.path.join(data['voc'], 'SegmentationClassAug'), pred)
    first = read_split(split_file(data['voc'], 'train_aug'))[0]
    mask = np.asarray(Image.open(pred / f'{first}.png')).copy()
    mask[0, :3] = 37
    save_palette_png(str(pred / f'{first}.png'), mask)
    status, message = cli(test_backbone, '--type', 'masks', '--root_path', data['voc'], '--pred_dir', pred,
                          '--split', 'train_aug', '--save_path', tmp_path, *CPU, monkeypatch=monkeypatch)
    assert status == 1 and message.startswith(f'error: {pred / first}.png: values [37] are not classes')
    assert not os.path.exists(layout.mask_scores_file(str(tmp_path), str(pred)))


# ---------------------------------------------------------------------------------------------- COCO ids
def test_a_coco_image_id_listed_twice_with_two_sizes_is_refused(tmp_path, monkeypatch):
    path = write_coco(str(tmp_path))
    data = json.load(open(path))
    first = data['images'][0]
    data['images'].append(dict(first))  # the same entry again: used once, with a warning
    json.dump(data, open(path, 'w'))
    with pytest.warns(UserWarning, match=f'image id {first["id"]} is listed twice with the same entry'):
        assert load_instances(path).images[first['id']]['height'] == first['height']
    data['images'][-1] = dict(first, height=first['height'] + 7)
    json.dump(data, open(path, 'w'))
    status, message = cli(parseCOCO, '--dataRoot', tmp_path, monkeypatch=monkeypatch)
    assert status == 1
    assert message.startswith(f'error: malformed COCO annotation file {path}: image id {first["id"]} has two entries')
    assert str(first['height'] + 7) in message and not os.path.exists(tmp_path / 'train2017_seg60')


def test_coco_ids_missing_from_the_json_fail_by_name(data, lpg_path, tmp_path, monkeypatch, capsys):
    names = sorted(name[:-4] for name in os.listdir(os.path.join(data['coco'], 'train2017_seg60')))[:2]
    ids = tmp_path / 'ids.txt'
    ids.write_text(f'{int(names[0])}\n999999\n{names[1]}\n')
    flags = ['--dataset', 'coco', '--round', 1, '--model_path_test', lpg_path, '--coco_root_dir', data['coco'],
             '--coco_proposals_dir', tmp_path / 'out', '--coco_test_size', 128, '--split_file', ids, *CPU]
    status, message = cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)
    assert status == 1 and 'has no image 999999 (it is in the id list)' in message
    assert sorted(pngs(layout.pseudo_mask_dir(str(tmp_path / 'out'), 'lpg', 'vgg16', 1))) == [f'{n}.png' for n in names]
    assert '3 images: 2 written, 0 already done, 1 failed' in capsys.readouterr().out
    ids.write_text(f'{names[0]}\n\nimage_7\n')
    status, message = cli(genPseudoMasks, *flags, '--coco_proposals_dir', tmp_path / 'out2', monkeypatch=monkeypatch)
    assert status == 1
    assert message == f"error: {ids}, line 3: 'image_7' is not a COCO image id (a number, such as 139 or 000000000139)"


# ---------------------------------------------------------------------------------------------- empty files
def test_a_zero_byte_image_is_a_per_image_failure_everywhere(data, lpg_path, tmp_path, monkeypatch, capsys):
    """Generation, training's up-front check and test.py each name the empty file and go on with the others."""
    train_ids = read_split(split_file(data['voc'], 'train_aug'))
    val_ids = read_split(split_file(data['voc'], 'val'))
    for image_id in (train_ids[1], val_ids[0]):
        open(os.path.join(data['voc'], 'JPEGImages', f'{image_id}.jpg'), 'wb').close()
    empty = os.path.join(data['voc'], 'JPEGImages', f'{train_ids[1]}.jpg')

    status, message = cli(genPseudoMasks, *generation_flags(data, lpg_path, tmp_path / 'out'), monkeypatch=monkeypatch)
    assert status == 1 and f'{train_ids[1]}: image file {empty} is empty (0 bytes)' in message
    assert '6 images: 5 written, 0 already done, 1 failed' in capsys.readouterr().out

    status, message = cli(train_backbone, *backbone_flags(data, tmp_path / 'run', '--num_iterations', 1),
                          monkeypatch=monkeypatch)
    assert status == 1 and '1 of 6 training images are bad' in message and 'is empty (0 bytes)' in message
    assert 'Traceback' not in message

    model = tmp_path / 'vgg16_final.pth'
    save_checkpoint(model, **DeepLabLargeFOV(num_classes=21).state_dict())
    status, message = cli(test_backbone, '--type', 'test', '--root_path', data['voc'], '--model_path', model,
                          '--test_size', 65, *CPU, monkeypatch=monkeypatch)
    assert status == 1 and 'is empty (0 bytes)' in message
    scores = load_json(layout.scores_file(layout.eval_dir(str(model), 'val'), 'test'))
    assert scores['num_scored'] == len(val_ids) - 1 and list(scores['failed']) == [val_ids[0]]


# ---------------------------------------------------------------------------------------------- preemption
@pytest.mark.slow
def test_sigterm_saves_the_training_state_and_resume_finishes(data, tmp_path):
    """A scheduler's SIGTERM: the update in progress finishes, checkpoint_last.pth holds that iteration, one line
    says so, the status is 143, and --resume continues from that iteration to the end, with the weights of the
    run that was never stopped."""
    def flags(save):
        return backbone_flags(data, save, '--num_iterations', 16, '--num_save_model', 1000, '--num_print_log', 1,
                              '--seed', 2, '--deterministic')
    process = spawn('main.py', *flags(tmp_path / 'run'))
    lines = []

    def trained_a_few():
        lines.append(process.stdout.readline())
        return lines[-1].startswith('iter 3/')
    assert kill_when(process, trained_a_few, sig=signal.SIGTERM), 'the run ended before it could be stopped'
    output = ''.join(lines) + process.stdout.read()
    assert process.returncode == 143, output[-2000:]
    assert 'Traceback' not in output
    stopped = load_checkpoint(layout.last_checkpoint(str(tmp_path / 'run')))['iteration']
    assert 3 <= stopped < 16
    assert f'interrupted by SIGTERM at iteration {stopped}; checkpoint saved' in output and '--resume' in output
    assert not os.path.exists(layout.backbone_weights(str(tmp_path / 'run'), 'vgg16'))
    assert f'at iteration {stopped}' in run_to_end('main.py', *flags(tmp_path / 'run'), '--resume')
    run_to_end('main.py', *flags(tmp_path / 'whole'))
    assert same_weights(layout.backbone_weights(str(tmp_path / 'run'), 'vgg16'),
                        layout.backbone_weights(str(tmp_path / 'whole'), 'vgg16'))


@pytest.mark.slow
def test_sigint_in_generation_keeps_the_masks_and_a_rerun_completes(data, lpg_path, tmp_path, monkeypatch, capsys):
    """Ctrl-C: the batch in flight is written, one line says how to continue, the status is 130; the rerun makes
    the rest, and the masks are those of an uninterrupted run."""
    flags = generation_flags(data, lpg_path, tmp_path / 'cut', '--voc_test_size', 512)
    out = layout.pseudo_mask_dir(str(tmp_path / 'cut'), 'lpg', 'vgg16', 1)
    process = spawn('genPseudoMasks.py', *flags)
    assert kill_when(process, lambda: len(pngs(out)) >= 1, sig=signal.SIGINT)
    output = process.stdout.read()
    assert process.returncode == 130 and 'Traceback' not in output, output[-2000:]
    assert 'interrupted by SIGINT: the masks written so far are complete and kept' in output
    assert 1 <= len(pngs(out)) < 6
    assert cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)[0] == 0
    assert cli(genPseudoMasks, *generation_flags(data, lpg_path, tmp_path / 'whole', '--voc_test_size', 512),
               monkeypatch=monkeypatch)[0] == 0
    whole = pngs(layout.pseudo_mask_dir(str(tmp_path / 'whole'), 'lpg', 'vgg16', 1))
    cut = pngs(out)
    assert whole.keys() == cut.keys() and all(np.array_equal(whole[k], cut[k]) for k in whole)


@pytest.mark.slow
def test_sigint_to_run_rounds_lets_the_running_step_save(data, tmp_path):
    """Ctrl-C at the terminal reaches run_rounds.py, which passes it on once to the training step: the step saves
    its state at the current iteration, and run_rounds.py says how to continue (status 130)."""
    work = tmp_path / 'work'
    process = spawn('run_rounds.py', '--voc_root_dir', data['voc'], '--coco_root_dir', data['coco'], '--work_dir', work,
                    '--rounds', 1, '--lpg_iterations', 400, '--lpg_batch_size', 2, '--lpg_crop_size', 128,
                    '--baselines', '', '--score_masks', 'false', '--from_scratch', '--cuda', 'false', '--workers', 0,
                    '--threads', 1, '--overwrite')  # the copied data's files are newer than their records
    log = RunLayout(str(work)).step_log('round 1: train LPG')

    def training():
        return os.path.exists(log) and 'samples, 400 iterations' in open(log).read()
    assert kill_when(process, training, sig=signal.SIGINT), 'the run ended before it could be interrupted'
    output = process.stdout.read()
    assert process.returncode == 130 and 'Traceback' not in output, output[-2000:]
    assert 'interrupted by SIGINT during step "round 1: train LPG"' in output and 'rerun run_rounds.py' in output
    stopped = load_checkpoint(layout.last_checkpoint(layout.lpg_dir(str(work / 'lpg'), 1)))['iteration']
    assert 1 <= stopped < 400 and f'interrupted by SIGINT at iteration {stopped}; checkpoint saved' in open(log).read()


# ---------------------------------------------------------------------------------------------- shared folders
@pytest.mark.slow
def test_a_second_run_in_a_live_runs_folder_is_refused_and_a_killed_runs_lock_is_stale(data, tmp_path, monkeypatch):
    save = tmp_path / 'run'
    flags = backbone_flags(data, save, '--num_iterations', 400, '--num_save_model', 1000, '--num_print_log', 1)
    first = spawn('main.py', *flags)
    assert first.stdout.readline() and wait_for_line(first, 'iter 1/')
    status, message = cli(train_backbone, *flags, '--overwrite', monkeypatch=monkeypatch)
    assert status == 1 and message == (f'{save} is in use by another run (process {first.pid}): two runs writing one '
                                       "folder would destroy each other's files; wait for it to end, or choose "
                                       'another output folder')
    assert first.poll() is None, 'the second run stopped the first'
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert os.path.exists(save / file_io.LOCK_NAME)  # left by the killed run: its lock died with it
    assert cli(train_backbone, *backbone_flags(data, save, '--num_iterations', 1), '--overwrite',
               monkeypatch=monkeypatch)[0] == 0
    assert not os.path.exists(save / file_io.LOCK_NAME)  # given back on the way out


def test_a_killed_runs_surviving_worker_does_not_keep_its_folder_locked(tmp_path):
    """A run's loader workers are forked children: killed with kill -9, the run leaves them alive for a while.
    They must not hold its folder's lock (a flock would be inherited; the POSIX record lock is not)."""
    folder = tmp_path / 'run'
    script = (f'import os, sys, time; sys.path.insert(0, {ROOT!r}); from datasets.files import claim_folder; '
              f'claim_folder({str(folder)!r})\n'
              'if os.fork() == 0:\n    os.closerange(0, 3); time.sleep(30); os._exit(0)\n'
              'print("claimed", flush=True); os._exit(0)')  # the parent dies without giving the folder back
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == 'claimed', proc.stderr
    try:
        file_io.claim_folder(str(folder))  # refused while the child lives, if the lock were inherited
    finally:
        subprocess.run(['pkill', '-f', re.escape(f'claim_folder({str(folder)!r})')])  # the sleeping child
    file_io.release_folders()
    assert not os.path.exists(folder / file_io.LOCK_NAME)


def wait_for_line(process, prefix, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            return False
        if line.startswith(prefix):
            return True
    return False


# ---------------------------------------------------------------------------------------------- one rule for errors
def test_run_script_gives_bad_input_one_line_and_bugs_their_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['script'])
    parser = argparse.ArgumentParser()

    def raising(error):
        def main(args):
            raise error
        return main
    with pytest.raises(SystemExit) as stop:
        run_script(raising(InputError(f'{tmp_path}/a.json: no "images" list')), parser)
    assert stop.value.code == f'error: {tmp_path}/a.json: no "images" list'
    with pytest.raises(SystemExit) as stop:
        run_script(raising(OSError(errno.EROFS, 'Read-only file system', str(tmp_path / 'x.png'))), parser)
    assert stop.value.code == f'error: {tmp_path / "x.png"}: Read-only file system'
    with pytest.raises(ValueError, match='a bug'):  # not the user's input: the traceback stays
        run_script(raising(ValueError('a bug')), parser)
    with pytest.raises(KeyError):
        run_script(raising(KeyError('model')), parser)


def test_an_output_folder_through_a_file_is_one_line(data, tmp_path, monkeypatch):
    (tmp_path / 'file').write_text('not a folder')
    status, message = cli(genPseudoMasks, '--dataset', 'voc', '--method', 'box', '--voc_root_dir', data['voc'],
                          '--voc_proposals_dir', tmp_path / 'file' / 'out', *CPU, monkeypatch=monkeypatch)
    assert status == 1 and message.startswith(f'error: {tmp_path / "file"}') and message.endswith('Not a directory')


def test_logs_and_locks_replace_a_symlink_instead_of_writing_through_it(data, tmp_path):
    outside = tmp_path / 'precious.txt'
    outside.write_text('keep me')
    work = tmp_path / 'work'
    args = run_rounds.get_args_parser().parse_args(['--voc_root_dir', data['voc'], '--coco_root_dir', data['coco'],
                                                    '--work_dir', str(work), '--overwrite'])
    log = RunLayout(str(work)).step_log('parse COCO')
    os.makedirs(os.path.dirname(log))
    os.symlink(outside, log)
    os.symlink(outside, os.path.join(data['coco'], 'annotations', file_io.LOCK_NAME))
    run_rounds.Runner(args).step('parse COCO', os.path.join('utils', 'parseCOCO.py'), ['--dataRoot', data['coco']])
    assert outside.read_text() == 'keep me'
    assert not os.path.islink(log) and 'labelling' in open(log).read()


# ---------------------------------------------------------------------------------------------- large images
def test_max_side_generates_a_large_image_downscaled_and_returns_its_masks_at_its_size(data, lpg_path, tmp_path,
                                                                                        monkeypatch):
    image = np.zeros((300, 200, 3), np.float32)
    entries = [[(10, 20, 109, 59)], [(150, 200, 199, 299), (0, 0, 9, 9)]]
    small, small_entries = downscaled(image, entries, 150)
    assert small.shape[:2] == (150, 100) and small_entries[0] == [(5.0, 10.0, 54.5, 29.5)]
    sample = BoxImage(torch.zeros(3, 150, 100), torch.zeros(2, 150, 100), torch.tensor([1, 2]), small_entries, 150,
                      100, 'big', 1, full_size=(300, 200), full_entry_boxes=entries)
    everywhere = torch.ones(2, 150, 100, dtype=torch.bool)
    foreground, _, boxes = restore_size(sample, everywhere)
    assert boxes == entries and foreground.shape == (2, 300, 200)
    for k in range(2):  # all of a downscaled entry is all of its boxes at full size, and nothing outside them
        assert torch.equal(foreground[k], torch.from_numpy(box_mask(entries[k], 300, 200)).bool())
    assert downscaled(image, entries, 300)[0] is image  # not longer than max_side: as it is

    flags = generation_flags(data, lpg_path, tmp_path / 'small', '--max_side', 32)
    assert cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)[0] == 0
    out = layout.pseudo_mask_dir(str(tmp_path / 'small'), 'lpg', 'vgg16', 1)
    ids = read_split(split_file(data['voc'], 'train_aug'))
    for image_id, image_path, boxes, _ in voc_box_items(data['voc'], ids):
        mask = pngs(out)[f'{image_id}.png']
        assert mask.shape == np.asarray(Image.open(image_path)).shape[:2]
        for class_id in set(np.unique(mask).tolist()) - {0}:
            inside = box_mask([box[1:] for box in boxes if box[0] == class_id], *mask.shape).astype(bool)
            assert not (mask == class_id)[~inside].any()
    same = generation_flags(data, lpg_path, tmp_path / 'same', '--max_side', 64)  # the images are 64 pixels
    plain = generation_flags(data, lpg_path, tmp_path / 'plain')
    assert cli(genPseudoMasks, *same, monkeypatch=monkeypatch)[0] == 0
    assert cli(genPseudoMasks, *plain, monkeypatch=monkeypatch)[0] == 0
    first, second = (pngs(layout.pseudo_mask_dir(str(tmp_path / name), 'lpg', 'vgg16', 1))
                     for name in ('same', 'plain'))
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)


def test_out_of_memory_on_one_image_fails_that_image_only(data, lpg_path, tmp_path, monkeypatch, capsys):
    ids = read_split(split_file(data['voc'], 'train_aug'))
    real = pseudo_masks.generate_foregrounds

    def short_of_memory(lpg, samples, *args, **kwargs):
        if any(sample.image_id == ids[1] for sample in samples):
            raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
        return real(lpg, samples, *args, **kwargs)
    monkeypatch.setattr(pseudo_masks, 'generate_foregrounds', short_of_memory)
    status, message = cli(genPseudoMasks, *generation_flags(data, lpg_path, tmp_path / 'out', '--image_batch_size', 2),
                          monkeypatch=monkeypatch)
    assert status == 1 and f'{ids[1]}: out of memory at 64x64 pixels: pass --max_side' in message
    assert sorted(pngs(layout.pseudo_mask_dir(str(tmp_path / 'out'), 'lpg', 'vgg16', 1))) == \
        sorted(f'{i}.png' for i in ids if i != ids[1])
    assert '6 images: 5 written, 0 already done, 1 failed' in capsys.readouterr().out
