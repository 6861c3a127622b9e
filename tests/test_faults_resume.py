"""The fault suite, killed runs and resume: a run killed with kill -9 (training, mask generation, COCO parsing)
resumes to the outputs of the run that was never interrupted; a rerun neither restarts a run silently nor reuses
the outputs of another model."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import genPseudoMasks
import main as train_backbone
import run_rounds
import test as test_backbone
from datasets.synthetic import make_demo_data
from models import DeepLabLargeFOV, LPGNet
from tests.conftest import ROOT, cli
from tests.faults import CPU, backbone_flags, generation_flags, kill_when, pngs, run_to_end, same_weights, spawn
from utils import parseCOCO
from utils.engine import layout
from utils.engine.checkpoint import load_checkpoint, save_checkpoint
from utils.engine.layout import RunLayout
from utils.pseudo_masks.methods import mask_dir
from utils.step_runner import step_argv


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
    runner.step = lambda name, script, settings: steps.append(step_argv(script, settings))
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
    assert not parseCOCO.STEP.done(parseCOCO.get_args_parser().parse_args(['--dataRoot', str(root)]))
    parseCOCO.parse_coco(str(root))
    for folder in ('train2017_seg60', 'train2017_bbox60'):
        names = sorted(os.listdir(reference / folder))
        assert names == sorted(os.listdir(root / folder)) and len(names) > 100
        assert all(open(reference / folder / n, 'rb').read() == open(root / folder / n, 'rb').read() for n in names)
    assert open(annos).read() == open(reference / 'annotations' / 'coco_train2017_bbox_annos.json').read()


@pytest.mark.slow
def test_interrupted_generation_resumes_to_the_same_masks(data, lpg_path, tmp_path, monkeypatch, capsys):
    assert cli(genPseudoMasks, *generation_flags(data, lpg_path, tmp_path / 'whole', '--voc_test_size', 512),
               monkeypatch=monkeypatch)[0] == 0
    out = mask_dir(str(tmp_path / 'cut'), 'lpg', 'vgg16', 1)
    process = spawn('genPseudoMasks.py', *generation_flags(data, lpg_path, tmp_path / 'cut', '--voc_test_size', 512))
    assert kill_when(process, lambda: len(pngs(out)) >= 1)
    assert len(pngs(out)) < 6
    capsys.readouterr()
    assert cli(genPseudoMasks, *generation_flags(data, lpg_path, tmp_path / 'cut', '--voc_test_size', 512),
               monkeypatch=monkeypatch)[0] == 0
    assert 'already done' in capsys.readouterr().out
    whole = pngs(mask_dir(str(tmp_path / 'whole'), 'lpg', 'vgg16', 1))
    cut = pngs(out)
    assert whole.keys() == cut.keys() and all(np.array_equal(whole[k], cut[k]) for k in whole)


def test_masks_of_another_model_are_not_reused(data, lpg_path, tmp_path, monkeypatch):
    flags = generation_flags(data, lpg_path, tmp_path / 'out')
    assert cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)[0] == 0
    out = mask_dir(str(tmp_path / 'out'), 'lpg', 'vgg16', 1)
    before = pngs(out)
    torch.manual_seed(1)
    other = save_checkpoint(tmp_path / 'other.pth', **LPGNet(in_channels=4).state_dict())
    status, message = cli(genPseudoMasks, *generation_flags(data, other, tmp_path / 'out'), monkeypatch=monkeypatch)
    assert status == 1 and 'other --model_path_test, lpg' in message and '--overwrite' in message
    assert pngs(out).keys() == before.keys() and all(np.array_equal(pngs(out)[k], before[k]) for k in before)
    # A file that is no checkpoint is refused before the folder is touched, even with --overwrite.
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(os.urandom(4096))
    status, message = cli(genPseudoMasks, *generation_flags(data, broken, tmp_path / 'out', '--overwrite'),
                          monkeypatch=monkeypatch)
    assert status == 1 and 'is not a checkpoint' in message
    assert pngs(out).keys() == before.keys() and all(np.array_equal(pngs(out)[k], before[k]) for k in before)


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
