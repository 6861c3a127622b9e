"""Segment Anything prompted with the boxes (genPseudoMasks.py --method sam), on a randomly initialised SAM
scaled down to 64-pixel inputs (the package builds its networks from any such numbers): the layout, masks that
stay inside their boxes, one image-encoder call per image, the report's row, the missing package."""
import json
import os
import sys

import numpy as np
import pytest
import segment_anything as segment_anything_module
import torch
from pycocotools import mask as mask_utils

import demo
import genPseudoMasks
import run_rounds
import test as test_backbone
from datasets.io import read_label
from datasets.synthetic import make_custom_data, make_voc_like
from datasets.voc import read_split, split_file, voc_box_items
from tests.conftest import cli, parse
from tests.tiny_sam_generation import TINY
from utils.engine.checkpoint import save_checkpoint
from utils.engine.layout import RunLayout
from utils.engine.precision import Precision
from utils.engine.steps import script_step
from utils.pseudo_masks import (
    MISSING_PACKAGE,
    SAM_MODELS,
    SamImage,
    build_sam,
    load_sam,
    sam_foregrounds,
    segment_anything,
)
from utils.pseudo_masks.methods import get_method
from utils.rounds import run_baseline
from utils.step_runner import Runner, step_argv

CPU = ['--cuda', 'false', '--workers', 0]
# TINY (tests/tiny_sam_generation.py): a SAM with the released models' structure, small enough for the CPU;
# WIDER: the same with another encoder width.
WIDER = TINY._replace(embed_dim=48)


@pytest.fixture
def tiny_sam(tmp_path, monkeypatch):
    """--sam_model tiny (and wider, another width), and a checkpoint file of tiny's random weights."""
    monkeypatch.setitem(SAM_MODELS, 'tiny', TINY)
    monkeypatch.setitem(SAM_MODELS, 'wider', WIDER)
    torch.manual_seed(0)
    return str(save_checkpoint(tmp_path / 'sam_tiny.pth', **build_sam(TINY).state_dict()))


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory):
    return make_voc_like(str(tmp_path_factory.mktemp('voc')), num_train=2, num_val=1, image_size=64, seed=11)


def sam_flags(voc_root, out, checkpoint, *extra):
    return ['--dataset', 'voc', '--method', 'sam', '--sam_model', 'tiny', '--sam_checkpoint', checkpoint,
            '--voc_root_dir', voc_root, '--voc_proposals_dir', out, *extra, *CPU]


class Calls:
    """Counts a module class's forward calls, and the batch size of each."""

    def __init__(self, monkeypatch, cls, batch_of=lambda *args, **kwargs: None):
        self.batches = []
        forward = cls.forward

        def counted(module, *args, **kwargs):
            self.batches.append(batch_of(*args, **kwargs))
            return forward(module, *args, **kwargs)
        monkeypatch.setattr(cls, 'forward', counted)


def test_sam_masks_lie_in_the_layout_inside_their_boxes_one_encoder_call_per_image(voc_root, tiny_sam, tmp_path,
                                                                                   monkeypatch):
    modeling = segment_anything_module.modeling
    encoder = Calls(monkeypatch, modeling.ImageEncoderViT, lambda x: x.shape[0])
    decoder = Calls(monkeypatch, modeling.MaskDecoder, lambda **kw: kw['sparse_prompt_embeddings'].shape[0])
    out = genPseudoMasks.main(parse(genPseudoMasks, *sam_flags(voc_root, tmp_path, tiny_sam)))
    assert out == os.path.join(str(tmp_path), 'sam')
    items = voc_box_items(voc_root, read_split(split_file(voc_root, 'train_aug')))
    assert sorted(os.listdir(out)) == sorted([f'{item.image_id}.png' for item in items] + ['record.json'])
    # Each image: one encoder forward; all its boxes in one prompt batch.
    assert encoder.batches == [1] * len(items)
    assert sorted(decoder.batches) == sorted(len(item.boxes) for item in items)
    labelled = 0
    for item in items:
        label = read_label(os.path.join(out, f'{item.image_id}.png'))
        allowed = np.zeros((21,) + label.shape, bool)
        for class_id, x1, y1, x2, y2 in item.boxes:
            allowed[class_id, int(y1):int(y2) + 1, int(x1):int(x2) + 1] = True
        ys, xs = np.nonzero(label)
        assert allowed[label[ys, xs], ys, xs].all()  # every labelled pixel inside a box of its class
        labelled += len(ys)
    assert labelled > 0

    report = test_backbone.main(parse(test_backbone, '--type', 'masks', '--root_path', voc_root, '--pred_dir', out,
                                      '--save_path', tmp_path / 'scores', *CPU))
    assert list(report['methods']) == ['sam']
    assert 0 <= report['methods']['sam']['Mean IoU'] <= 100
    table = open(tmp_path / 'scores' / 'masks_report_sam.md').read().splitlines()
    assert table[2].startswith('| sam |')


@pytest.mark.parametrize('output, multimask', [('single', False), ('best', True)])
def test_each_box_takes_sams_own_mask_for_that_prompt_kept_inside_the_box(tiny_sam, output, multimask):
    """The batched path against SamPredictor.predict of each box alone: the box ends at the far edge of its last
    pixel, the single-mask output or the multimask output with the highest predicted IoU, clipped to the box."""
    torch.manual_seed(1)
    sam = build_sam(TINY)
    predictor = segment_anything().SamPredictor(sam)
    image = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    boxes = [(2, 3, 20, 30), (10, 10, 45, 35)]
    sample = SamImage('a', image, [3, 5], [[box] for box in boxes], 1)
    foreground, scores = sam_foregrounds(predictor, sample, Precision('off', torch.device('cpu')), output)
    predictor.set_image(image)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        masks, iou, _ = predictor.predict(box=np.array([x1, y1, x2 + 1, y2 + 1]), multimask_output=multimask,
                                          return_logits=True)
        expected = np.zeros((40, 50), bool)
        expected[y1:y2 + 1, x1:x2 + 1] = masks[iou.argmax()][y1:y2 + 1, x1:x2 + 1] > 0
        assert np.array_equal(foreground[k].numpy(), expected)
        assert (scores[k][foreground[k]] > 0.5).all() and (scores[k][~torch.from_numpy(expected)] <= 0.5).all()


def test_instances_on_a_custom_dataset_give_one_mask_per_box(tiny_sam, tmp_path):
    annotations, image_dir = make_custom_data(str(tmp_path / 'custom'), num_images=2, image_size=64, seed=3)['target']
    out = genPseudoMasks.main(parse(
        genPseudoMasks, '--dataset', 'custom', '--annotations', annotations, '--image_dir', image_dir, '--method',
        'sam', '--sam_model', 'tiny', '--sam_checkpoint', tiny_sam, '--instances', '--custom_proposals_dir',
        tmp_path / 'out', *CPU))
    source = json.load(open(annotations))['annotations']
    result = json.load(open(os.path.join(out, 'pseudo_masks.json')))['annotations']
    box_of = {a['id']: a['bbox'] for a in source}
    assert sorted(a['source_annotation'] for a in result) == sorted(box_of)
    for annotation in result:
        mask = mask_utils.decode({'size': annotation['segmentation']['size'],
                                  'counts': annotation['segmentation']['counts'].encode()}).astype(bool)
        x, y, w, h = box_of[annotation['source_annotation']]
        mask[int(y):int(y + h) + 1, int(x):int(x + w) + 1] = False
        assert not mask.any()


def test_without_the_package_sam_stops_in_one_line_before_any_work(voc_root, tiny_sam, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'segment_anything', None)  # import segment_anything raises ImportError
    status, message = cli(genPseudoMasks, *sam_flags(voc_root, tmp_path / 'out', tiny_sam), monkeypatch=monkeypatch)
    assert (status, message) == (1, f'error: {MISSING_PACKAGE}')
    assert not os.path.exists(tmp_path / 'out')


def test_sam_flags_are_checked_before_any_work(voc_root, tiny_sam, tmp_path, monkeypatch):
    flags = sam_flags(voc_root, tmp_path / 'out', tiny_sam)
    status, message = cli(genPseudoMasks, *flags[:6], *flags[8:], monkeypatch=monkeypatch)
    assert status == 1 and message.startswith('error: --method sam needs --sam_checkpoint')
    status, message = cli(genPseudoMasks, *sam_flags(voc_root, tmp_path / 'out', tmp_path / 'none.pth'),
                          monkeypatch=monkeypatch)
    assert (status, message) == (1, f'error: SAM checkpoint not found: {tmp_path / "none.pth"}')
    status, message = cli(genPseudoMasks, *sam_flags(voc_root, tmp_path / 'out', tiny_sam, '--sam_model', 'wider'),
                          monkeypatch=monkeypatch)
    assert (status, message) == (1, f'error: {tiny_sam} holds SAM tiny weights: pass --sam_model tiny')


def test_the_released_architectures_are_the_packages_own():
    """vit_b, vit_l and vit_h built here hold the state-dict keys and shapes of segment_anything's registry, so
    Meta's checkpoints load strictly (built on the meta device: no memory, no time)."""
    registry = segment_anything().sam_model_registry
    with torch.device('meta'):
        for name, arch in SAM_MODELS.items():
            ours, theirs = build_sam(arch).state_dict(), registry[name]().state_dict()
            assert [(k, v.shape) for k, v in ours.items()] == [(k, v.shape) for k, v in theirs.items()]


def test_load_sam_reads_the_model_size_from_the_file(tiny_sam):
    predictor = load_sam(None, tiny_sam, Precision('off', torch.device('cpu')))
    assert predictor.model.image_encoder.patch_embed.proj.out_channels == TINY.embed_dim


def test_run_rounds_runs_the_sam_baseline_as_a_network_step_with_its_weights(tiny_sam, tmp_path):
    args = parse(run_rounds, '--voc_root_dir', 'voc', '--coco_root_dir', 'coco', '--work_dir', tmp_path,
                 '--from_scratch', '--baselines', 'box,sam', '--sam_checkpoint', tiny_sam, '--sam_model', 'tiny')
    runner, steps = Runner(args), []
    runner.step = lambda name, script, settings: steps.append((script, step_argv(script, settings)))
    run_baseline(runner, RunLayout(tmp_path), get_method('sam'))
    (script, flags), = steps[:1]
    sam = genPseudoMasks.get_args_parser().parse_args(flags)
    assert (script, sam.method, sam.sam_checkpoint, sam.sam_model) == ('genPseudoMasks.py', 'sam', tiny_sam, 'tiny')
    step = script_step(script)
    assert step.runs_networks(sam) and not step.runs_networks(step.parse(['--method', 'box']))


def test_run_rounds_refuses_the_sam_baseline_without_weights_before_any_step(tmp_path, monkeypatch):
    flags = ['--voc_root_dir', 'voc', '--coco_root_dir', 'coco', '--work_dir', tmp_path / 'w', '--from_scratch',
             '--baselines', 'box,sam']
    status, message = cli(run_rounds, *flags, monkeypatch=monkeypatch)
    assert (status, message) == (1, 'error: the sam baseline needs --sam_checkpoint (a SAM weights file; nothing is '
                                 'downloaded)')
    status, message = cli(run_rounds, *flags[:-1], 'box,sma', monkeypatch=monkeypatch)
    assert (status, message) == (2, 'run_rounds: error: --baselines: unknown sma (expected a comma list of box, '
                                 'grabcut, crf, sam) (--help lists the flags)')
    assert not (tmp_path / 'w').exists()


def test_the_demo_adds_sam_to_the_baselines_when_given_weights(tiny_sam):
    args = demo.get_args_parser().parse_args(['--sam_checkpoint', tiny_sam])
    pipeline = run_rounds.get_args_parser().parse_args(demo.pipeline_flags(args, 'voc', 'coco', 'work'))
    assert pipeline.baselines == ['box', 'grabcut', 'crf', 'sam'] and pipeline.sam_checkpoint == tiny_sam
    assert run_rounds.get_args_parser().parse_args(
        demo.pipeline_flags(demo.get_args_parser().parse_args([]), 'voc', 'coco', 'work')).baselines == [
        'box', 'grabcut', 'crf']
