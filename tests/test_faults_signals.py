"""The fault suite, preemption: a scheduler's SIGTERM and a Ctrl-C (SIGINT) let the work in progress finish and
save, say in one line how to continue, exit 143 or 130, and the rerun ends where the uninterrupted run ends."""
import os
import signal

import numpy as np
import pytest

import genPseudoMasks
from tests.conftest import cli
from tests.faults import backbone_flags, generation_flags, kill_when, pngs, run_to_end, same_weights, spawn
from utils.engine import layout
from utils.engine.checkpoint import load_checkpoint
from utils.engine.layout import RunLayout
from utils.pseudo_masks.methods import mask_dir


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
    out = mask_dir(str(tmp_path / 'cut'), 'lpg', 'vgg16', 1)
    process = spawn('genPseudoMasks.py', *flags)
    assert kill_when(process, lambda: len(pngs(out)) >= 1, sig=signal.SIGINT)
    output = process.stdout.read()
    assert process.returncode == 130 and 'Traceback' not in output, output[-2000:]
    assert 'interrupted by SIGINT: the masks written so far are complete and kept' in output
    assert 1 <= len(pngs(out)) < 6
    assert cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)[0] == 0
    assert cli(genPseudoMasks, *generation_flags(data, lpg_path, tmp_path / 'whole', '--voc_test_size', 512),
               monkeypatch=monkeypatch)[0] == 0
    whole = pngs(mask_dir(str(tmp_path / 'whole'), 'lpg', 'vgg16', 1))
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
