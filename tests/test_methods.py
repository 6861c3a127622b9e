"""The registry of pseudo-mask methods: a method registered in one place reaches genPseudoMasks.py, run_rounds.py
--baselines and the scores, and no script spells a method's name.

A toy method (the left half of each box) is registered in-process and run through genPseudoMasks.py's command
line and through run_rounds.py --baselines, whose steps run here as they would in their subprocesses.
"""
import ast
import contextlib
import os
import runpy
import sys

import numpy as np
import pytest

import genPseudoMasks
import run_rounds
from datasets.boxes import box_mask, pixel_box
from datasets.constants import IGNORE_LABEL
from datasets.io import read_label
from datasets.voc import read_split, split_file, voc_box_items
from tests.conftest import ROOT, cli, parse
from utils.engine.errors import FlagError
from utils.engine.files import read_json
from utils.pseudo_masks import methods
from utils.pseudo_masks.methods import METHODS, MethodSpec, get_method, mask_dir


def left_halves(image_bgr, entry_boxes):
    """Each entry's foreground: the left half of each of its boxes (columns left..middle)."""
    height, width = image_bgr.shape[:2]
    foreground = np.zeros((len(entry_boxes), height, width), bool)
    for k, boxes in enumerate(entry_boxes):
        for box in boxes:
            left, top, right, bottom = pixel_box(*box, height, width)
            foreground[k, top:bottom + 1, left:(left + right) // 2 + 1] = True
    return foreground, None


TOY = MethodSpec(name='toy', title='left halves', help='the left half of each box', foreground=left_halves)


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(METHODS, TOY.name, TOY)
    return TOY


def expected_foreground(image_path_boxes):
    """The union of the left halves of an image's boxes, computed apart from the method."""
    _, image_path, boxes, frame = image_path_boxes
    height, width = frame.height, frame.width
    expected = np.zeros((height, width), bool)
    for _, *box in boxes:
        left, top, right, bottom = pixel_box(*box, height, width)
        expected[top:bottom + 1, left:(left + right) // 2 + 1] = True
    return expected


def box_recall(folder, voc_root, items):
    """Recall of the foreground inside the boxes, counted here from the PNGs and the true masks."""
    tp = fn = 0
    for image_id, _, boxes, _ in items:
        gt = read_label(os.path.join(voc_root, 'SegmentationClassAug', f'{image_id}.png'))
        pred = read_label(os.path.join(folder, f'{image_id}.png'))
        region = box_mask([box[1:] for box in boxes], *gt.shape).astype(bool) & (gt != IGNORE_LABEL)
        tp += ((pred > 0) & (gt > 0) & region).sum()
        fn += ((pred == 0) & (gt > 0) & region).sum()
    return tp / (tp + fn)


def test_a_registered_method_runs_through_genPseudoMasks(toy, data, tmp_path, monkeypatch):
    voc = data['voc']
    flags = ['--dataset', 'voc', '--method', 'toy', '--voc_root_dir', voc, '--voc_proposals_dir', tmp_path / 'out',
             '--n_jobs', 1, '--cuda', 'false', '--workers', 0]
    status, _ = cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)
    assert status == 0
    folder = mask_dir(str(tmp_path / 'out'), 'toy')
    assert folder == str(tmp_path / 'out' / 'toy')
    items = voc_box_items(voc, read_split(split_file(voc, 'train_aug')))
    for item in items:
        label = read_label(os.path.join(folder, f'{item.image_id}.png'))
        np.testing.assert_array_equal(label > 0, expected_foreground(item))
    # Its completion record says done for the same flags.
    assert genPseudoMasks.STEP.done(parse(genPseudoMasks, *flags))
    # --overlap confidence needs probabilities, which the toy does not give.
    status, message = cli(genPseudoMasks, '--dataset', 'voc', '--method', 'toy', '--overlap', 'confidence',
                          '--voc_root_dir', voc, '--voc_proposals_dir', tmp_path / 'o2', monkeypatch=monkeypatch)
    assert status == 2 and 'which --method toy has not' in message and not os.path.exists(tmp_path / 'o2')


def run_steps_here(cmd, log, env):
    """utils.step_runner.run_step_process, in this process: the registry's toy entry is only here."""
    script = next(part for part in cmd if part.endswith('.py') and part.startswith(ROOT))
    argv = sys.argv
    sys.argv = [script] + cmd[cmd.index(script) + 1:]
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            runpy.run_path(script, run_name='__main__')
        return 0
    except SystemExit as stop:
        if isinstance(stop.code, int) or stop.code is None:
            return stop.code or 0
        log.write(f'{stop.code}\n')  # what Python would print on the way out
        return 1
    finally:
        sys.argv = argv


def test_a_registered_method_is_a_baseline_of_run_rounds_and_its_scores(toy, data, tmp_path, monkeypatch):
    monkeypatch.setattr('utils.step_runner.run_step_process', run_steps_here)
    monkeypatch.setattr(run_rounds, 'run_round', lambda *args, **kwargs: {})  # the baselines only
    args = run_rounds.get_args_parser().parse_args([
        '--voc_root_dir', data['voc'], '--coco_root_dir', data['coco'], '--work_dir', str(tmp_path / 'work'),
        '--from_scratch', '--baselines', 'box,toy', '--n_jobs', '1', '--cuda', 'false', '--workers', '0',
        '--overwrite'])
    summary = run_rounds.main(args)
    assert list(summary['baseline_scores']) == ['box', 'toy']
    voc = data['voc']
    items = voc_box_items(voc, read_split(split_file(voc, 'train_aug')))
    recall = {}
    for name, path in summary['baseline_scores'].items():
        folder = get_method(name).folder(os.path.join(tmp_path, 'work', 'pseudo_voc'))
        assert os.path.basename(path) == f'scores_masks_{name}.json'
        recall[name] = read_json(path)['pseudo masks']['box foreground']['recall']
        assert recall[name] == pytest.approx(box_recall(folder, voc, items))
    assert recall['box'] == 1.0 and 0.2 < recall['toy'] < 0.8  # the left halves hold part of each object


def test_an_unknown_method_cannot_reach_a_dispatch(monkeypatch, tmp_path):
    with pytest.raises(FlagError, match="unknown pseudo-mask method 'nope'"):
        get_method('nope')
    status, message = cli(run_rounds, '--voc_root_dir', 'voc', '--coco_root_dir', 'coco', '--work_dir',
                          tmp_path / 'w', '--from_scratch', '--baselines', 'box,nope', monkeypatch=monkeypatch)
    assert status == 2 and '--baselines: unknown nope' in message and not os.path.exists(tmp_path / 'w')
    with pytest.raises(ValueError, match='already registered'):
        methods.register_method(get_method('box'))


def string_constants(path):
    tree = ast.parse(open(path).read(), path)
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}


# Strings that equal a method's name but mean something else: test.py --type crf (a backbone's evaluation with
# DenseCRF) and the scores file it writes; the benchmark's training folder of the generator.
OTHER_MEANINGS = {'utils/rounds.py': ['crf'], 'benchmarks/real_photos.py': ['lpg']}


def test_no_script_spells_a_method_name():
    """The scripts, the rounds and the runner name methods through the registry, never as strings."""
    names = set(METHODS)
    spelled = {}
    for script in ('genPseudoMasks.py', 'run_rounds.py', 'demo.py', 'utils/rounds.py', 'utils/step_runner.py',
                   'benchmarks/real_photos.py', 'benchmarks/generation_memory.py'):
        found = names & string_constants(os.path.join(ROOT, script))
        if found:
            spelled[script] = sorted(found)
    assert spelled == OTHER_MEANINGS
