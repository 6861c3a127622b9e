"""The whole method at tiny sizes, run as a user runs it: each script in a subprocess with the published flags.

`demo.py` drives run_rounds.py, which runs parseCOCO, the filled-box baseline, trainLPG, genPseudoMasks,
test.py (masks, crf) and main.py for two rounds; round 2 reads the round-1 LPG and backbones.
"""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import genPseudoMasks
import main as train_backbone
import test as test_backbone
import trainLPG
from datasets.coco import COCO60LPGDataset, load_bbox_annos, non_voc_boxes
from datasets.constants import VOC_CLASSES
from datasets.voc import read_split, split_file, voc_box_items
from models import LPGNet
from tests.conftest import cli, mean_iou, run
from utils.engine.checkpoint import load_weights

pytestmark = pytest.mark.slow  # every test here reads the outputs of the tiny demo run (minutes on 2 cores)

TINY = ['--num_coco', '14', '--num_voc_train', '6', '--num_voc_val', '4', '--lpg_iterations', '2',
        '--backbone_iterations', '2', '--baselines', 'box,crf',  # GrabCut: tests/test_results.py
        '--allow_empty']  # 2 iterations teach the generator nothing: accept masks without foreground


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo')
    log = run('demo.py', '--out_dir', out / 'out', '--figs_dir', out / 'figs', *TINY)
    data = out / 'out' / 'data'
    return dict(out=out / 'out', work=out / 'out' / 'work', figs=out / 'figs', log=log,
                voc_root=str(data / 'VOCdevkit' / 'VOC2012'), coco_root=str(data / 'coco'))


def test_demo_table_json_and_figure(demo):
    results = json.load(open(demo['out'] / 'demo_results.json'))
    assert list(results['backbones']) == ['filled boxes', 'DenseCRF', 'LPG round 1', 'LPG round 2', 'ground truth']
    assert list(results['pseudo masks']) == ['filled boxes', 'DenseCRF', 'LPG round 1', 'LPG round 2',
                                             'LPG round 2, uniform probabilities', 'LPG round 1, overlap confidence',
                                             'LPG round 1, overlap smaller']
    assert 0 < results['pseudo masks']['filled boxes']['Mean IoU'] < 1
    assert results['pseudo masks']['filled boxes']['box foreground']['recall'] == 1.0  # a filled box misses nothing
    for masks, row in results['backbones'].items():  # the report's rows are the score files' values
        folder = {'filled boxes': 'box', 'DenseCRF': 'crf', 'ground truth': 'ground_truth'}.get(
            masks, f'Round_{masks[-1]}')
        scores = json.load(open(demo['work'] / 'backbone_voc' / folder / 'eval_val' / 'scores_crf.json'))
        assert row == {key: scores[key]['Mean IoU'] for key in ('without CRF', 'with CRF')}
    for step in ('round 1: train LPG', 'round 2: train LPG', 'round 1: train COCO-60 backbone', 'compare pseudo masks'):
        assert results['step_seconds'][step] > 0
    assert '| LPG round 2 |' in demo['log'] and '| DenseCRF |' in demo['log'] and '| ground truth |' in demo['log']
    masks = {name: row['Mean IoU'] for name, row in results['pseudo masks'].items()}
    gain = f'round 2: {100 * (masks["LPG round 2"] - masks["LPG round 1"]):+.1f} points over round 1, of which ' \
           f'{100 * (masks["LPG round 2"] - masks["LPG round 2, uniform probabilities"]):+.1f} come from reading'
    assert gain in demo['log']
    for step in ('baseline box: train VOC backbone', 'ground truth: test VOC backbone + CRF',
                 'round 2: train LPG, uniform probabilities', 'round 2: VOC pseudo masks, uniform probabilities'):
        assert results['step_seconds'][step] > 0
    figure = np.asarray(Image.open(demo['figs'] / 'demo_pseudo_masks.png'))
    assert figure.ndim == 3 and figure.shape[0] > 3 * 128 and figure.shape[1] > 6 * 128
    curves = np.asarray(Image.open(demo['figs'] / 'demo_training_curves.png'))
    assert curves.shape[1] == 4 * 360 and curves.min() < 128  # four curves drawn
    logs = sorted(os.listdir(demo['work'] / 'logs'))
    assert 'round_1_train_LPG.log' in logs and f'log: {demo["work"] / "logs" / "round_1_train_LPG.log"}' in demo['log']
    assert 'iter 2/2' in open(demo['work'] / 'logs' / 'round_1_train_LPG.log').read()


def test_lpg_checkpoints_load_for_their_round(demo):
    for r, channels in ((1, 4), (2, 5)):
        path = demo['work'] / 'lpg' / f'Round_{r}' / f'LPG_Round{r}.pth'
        load_weights(LPGNet(in_channels=channels), path)
        assert (demo['work'] / 'lpg' / f'Round_{r}' / 'checkpoint_last.pth').exists()


def test_voc_pseudo_masks_hold_only_the_image_classes(demo):
    ids = read_split(split_file(demo['voc_root'], 'train_aug'))
    for name in ('box', 'vgg16_Round1', 'vgg16_Round2'):
        for image_id, image_path, boxes, _ in voc_box_items(demo['voc_root'], ids):
            mask = Image.open(demo['work'] / 'pseudo_voc' / name / f'{image_id}.png')
            assert mask.mode == 'P'
            assert mask.size == Image.open(image_path).size
            allowed = {0} | {box[0] for box in boxes}
            assert set(np.unique(np.asarray(mask)).tolist()) <= allowed
    box = np.asarray(Image.open(demo['work'] / 'pseudo_voc' / 'box' / f'{ids[0]}.png'))
    assert box.any(), 'a filled-box mask has foreground wherever there is a box'


def test_coco_pseudo_masks_use_the_60_class_ids(demo):
    annos = load_bbox_annos(demo['coco_root'])
    folder = demo['work'] / 'pseudo_coco' / 'vgg16_Round1'
    written = sorted(name for name in os.listdir(folder) if name.endswith('.png'))
    assert written
    for name in written:
        present = {box[0] for box in non_voc_boxes(annos[str(int(name[:-4]))])}
        assert set(np.unique(np.asarray(Image.open(folder / name))).tolist()) <= {0} | present


def test_score_files(demo):
    """Every score file holds the mIoU of the predictions and masks beside it, counted here again."""
    voc = demo['voc_root']
    val, train = read_split(split_file(voc, 'val')), read_split(split_file(voc, 'train_aug'))
    gt, gt_aug = os.path.join(voc, 'SegmentationClass'), os.path.join(voc, 'SegmentationClassAug')
    for r in (1, 2):
        eval_dir = demo['work'] / 'backbone_voc' / f'Round_{r}' / 'eval_val'
        scores = json.load(open(eval_dir / 'scores_crf.json'))
        assert scores['num_images'] == 4
        for key, folder in (('without CRF', 'pred'), ('with CRF', 'crf')):
            assert set(scores[key]) == {'Pixel Accuracy', 'Mean Accuracy', 'Frequency Weighted IoU', 'Mean IoU',
                                        'Class IoU'}
            assert scores[key]['Mean IoU'] == pytest.approx(mean_iou(eval_dir / folder, gt, val, 21))
            assert list(scores[key]['Class IoU']) == list(VOC_CLASSES)
        masks = json.load(open(demo['work'] / 'pseudo_voc' / f'scores_masks_vgg16_Round{r}.json'))
        assert masks['num_images'] == 6
        assert masks['pseudo masks']['Mean IoU'] == pytest.approx(
            mean_iou(demo['work'] / 'pseudo_voc' / f'vgg16_Round{r}', gt_aug, train, 21))
        assert np.asarray(masks['confusion']).shape == (21, 21)
    crf_dir = demo['work'] / 'backbone_voc' / 'Round_1' / 'eval_val' / 'crf'
    assert len(os.listdir(crf_dir)) == 4
    for masks in ('box', 'crf', 'ground_truth'):  # --compare_backbones: the same backbone on the other masks
        eval_dir = demo['work'] / 'backbone_voc' / masks / 'eval_val'
        scores = json.load(open(eval_dir / 'scores_crf.json'))
        assert scores['num_images'] == 4
        assert scores['with CRF']['Mean IoU'] == pytest.approx(mean_iou(eval_dir / 'crf', gt, val, 21))
    trained_on = json.load(open(demo['work'] / 'backbone_voc' / 'ground_truth' / 'record.json'))
    assert trained_on['identity']['settings']['label_path_name'] == 'SegmentationClassAug'


def test_uniform_ablation_differs_from_the_method_only_in_the_probability_channel(demo):
    """run_rounds.py --uniform_ablation: the ablation's round-2 generator starts from the same round-1 generator
    and trains on the same data for the same iterations; only the channel it reads differs."""
    method, ablation = (json.load(open(demo['work'] / folder / 'Round_2' / 'record.json'))
                        for folder in ('lpg', 'lpg_uniform'))
    settings = method['identity']['settings'], ablation['identity']['settings']
    assert set(settings[0]) == set(settings[1])
    assert {key for key in settings[0] if settings[0][key] != settings[1][key]} == {'init_seg_model_path', 'seg_probs'}
    assert settings[1]['seg_probs'] == 'uniform' and settings[1]['init_seg_model_path'] is None
    inputs = method['identity']['inputs'], ablation['identity']['inputs']
    assert set(inputs[0]) == set(inputs[1])
    assert {key for key in inputs[0] if inputs[0][key] != inputs[1][key]} == {'init_seg_model'}
    assert inputs[1]['init_seg_model'] is None
    assert method['target'] == ablation['target']
    ids = read_split(split_file(demo['voc_root'], 'train_aug'))
    assert sorted(os.listdir(demo['work'] / 'pseudo_voc' / 'vgg16_Round2_uniform')) == \
        sorted(f'{i}.png' for i in ids) + ['record.json']


def test_rerun_skips_finished_steps(demo):
    log = run('demo.py', '--out_dir', demo['out'], '--figs_dir', demo['figs'], *TINY)
    assert '[run] round 1: train LPG' not in log and '[skip] round 1: train LPG' in log
    assert '[skip] round 2: train VOC backbone' in log
    assert '[skip] round 1: VOC pseudo masks' in log and '[run]' not in log


def test_train_lpg_short_last_batch_and_resume(demo, tmp_path):
    samples = len(COCO60LPGDataset(demo['coco_root'], crop_size=128))
    # A last batch of one sample cannot pass batch norm at the 1x1 hourglass bottom of a 128 crop; take 2 or more.
    batch = next(b for b in (3, 4, 5, 6) if samples % b >= 2)
    iterations = samples // batch + 2  # runs through the short batch into the second epoch
    log = run('trainLPG.py', '--coco_root_dir', demo['coco_root'], '--round', 1, '--model_save_path', tmp_path,
              '--batch_size', batch, '--crop_size', 128, '--num_max_iterations', iterations, '--num_print_log', 1,
              '--num_save_model', iterations, '--cuda', 'false', '--workers', 0)
    assert f'iter {iterations}/{iterations}' in log
    state = torch.load(tmp_path / 'Round_1' / 'checkpoint_last.pth', weights_only=True)
    assert state['iteration'] == iterations
    log = run('trainLPG.py', '--coco_root_dir', demo['coco_root'], '--round', 1, '--model_save_path', tmp_path,
              '--batch_size', batch, '--crop_size', 128, '--num_max_iterations', iterations + 1, '--resume',
              '--cuda', 'false', '--workers', 0)
    assert 'resumed from' in log and f'iter {iterations + 1}/{iterations + 1}' in log


def test_later_rounds_demand_the_previous_backbone(demo, tmp_path, monkeypatch):
    lpg2 = demo['work'] / 'lpg' / 'Round_2' / 'LPG_Round2.pth'
    status, log = cli(genPseudoMasks, '--dataset', 'voc', '--round', 2, '--model_path_test', lpg2, '--voc_root_dir',
                      demo['voc_root'], '--voc_proposals_dir', tmp_path, '--cuda', 'false', monkeypatch=monkeypatch)
    assert status == 2 and '--init_voc_model_path' in log
    status, log = cli(trainLPG, '--coco_root_dir', demo['coco_root'], '--round', 2, '--model_save_path', tmp_path,
                      '--cuda', 'false', monkeypatch=monkeypatch)
    assert status == 2 and '--init_seg_model_path' in log
    # A round-2 generator is not a round-1 one: the refusal names the file and the first-layer shape.
    status, log = cli(genPseudoMasks, '--dataset', 'voc', '--round', 1, '--model_path_test', lpg2, '--voc_root_dir',
                      demo['voc_root'], '--voc_proposals_dir', tmp_path / 'r1', '--cuda', 'false',
                      monkeypatch=monkeypatch)
    assert status == 1 and str(lpg2) in log and 'pre.0.conv.weight' in log


def test_uniform_probability_ablation_runs_beside_the_method(demo, tmp_path, monkeypatch):
    """Round 2 with --seg_probs uniform: the generator fine-tuned from the round-1 one without a backbone, its
    masks written beside the method's in <model_type>_Round2_uniform; mixing it with a backbone is refused."""
    lpg1 = demo['work'] / 'lpg' / 'Round_1' / 'LPG_Round1.pth'
    flags = ['--coco_root_dir', demo['coco_root'], '--round', 2, '--seg_probs', 'uniform', '--init_lpg_model_path',
             lpg1, '--model_save_path', tmp_path / 'lpg', '--batch_size', 4, '--crop_size', 128,
             '--num_max_iterations', 2, '--cuda', 'false', '--workers', 0]
    assert cli(trainLPG, *flags, monkeypatch=monkeypatch)[0] == 0
    lpg2 = tmp_path / 'lpg' / 'Round_2' / 'LPG_Round2.pth'
    gen = ['--dataset', 'voc', '--round', 2, '--seg_probs', 'uniform', '--model_path_test', lpg2, '--voc_root_dir',
           demo['voc_root'], '--voc_proposals_dir', tmp_path / 'pseudo', '--voc_test_size', 128,
           '--cuda', 'false', '--workers', 0, '--allow_empty']  # 2 + 2 iterations learn no foreground
    assert cli(genPseudoMasks, *gen, monkeypatch=monkeypatch)[0] == 0
    folder = tmp_path / 'pseudo' / 'vgg16_Round2_uniform'
    ids = read_split(split_file(demo['voc_root'], 'train_aug'))
    assert sorted(os.listdir(folder)) == sorted(f'{i}.png' for i in ids) + ['record.json']
    backbone = demo['work'] / 'backbone_voc' / 'Round_1' / 'vgg16_final.pth'
    status, log = cli(genPseudoMasks, *gen, '--init_voc_model_path', backbone, monkeypatch=monkeypatch)
    assert status == 2 and '--seg_probs uniform' in log
    status, log = cli(trainLPG, *flags, '--init_seg_model_path', backbone, monkeypatch=monkeypatch)
    assert status == 2 and '--seg_probs uniform' in log


def test_test_py_plain_and_cuda_false(demo, tmp_path):
    model = demo['work'] / 'backbone_voc' / 'Round_1' / 'vgg16_final.pth'
    run('test.py', '--type', 'test', '--root_path', demo['voc_root'], '--model_type', 'vgg16', '--model_path', model,
        '--save_path', tmp_path, '--cuda', 'false', cwd=tmp_path)  # it records the run in ./.lpg/
    scores = json.load(open(tmp_path / 'scores_test.json'))
    assert list(scores) == ['model_path', 'model_type', 'split', 'num_images', 'num_scored', 'failed', 'without CRF',
                            'confusion', 'one class everywhere']
    assert scores['num_scored'] == 4 and scores['failed'] == {}
    assert len(os.listdir(tmp_path / 'pred')) == 4
    assert sorted(name[-4:] for name in os.listdir(tmp_path / 'logits')) == ['.npz'] * 4 + ['json']  # + record.json


def test_main_honours_label_path_name_for_resnet(demo, tmp_path, monkeypatch):
    # The original's resnet101 branch ignored --label_path_name; here a missing folder is named in the error ...
    status, log = cli(train_backbone, '--root_path', demo['voc_root'], '--label_path_name', tmp_path / 'no_such_masks',
                      '--model_type', 'resnet101', '--save_path', tmp_path / 'ckpt', '--from_scratch',
                      '--cuda', 'false', monkeypatch=monkeypatch)
    assert status == 1 and 'no_such_masks' in log
    # ... and the pseudo masks it names train the multi-scale ResNet (batch 2, no accumulation, a few steps).
    log = run('main.py', '--root_path', demo['voc_root'], '--label_path_name', demo['work'] / 'pseudo_voc' / 'box',
              '--model_type', 'resnet101', '--save_path', tmp_path / 'ckpt', '--num_iterations', 1, '--iter_size', 1,
              '--crop_size', 65, '--from_scratch', '--cuda', 'false', '--workers', 0)
    assert 'resnet101: 6 images' in log and (tmp_path / 'ckpt' / 'resnet101_final.pth').exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message given on a machine without a GPU')
def test_cuda_true_without_a_gpu_says_so(demo, tmp_path, monkeypatch):
    status, log = cli(test_backbone, '--type', 'test', '--root_path', demo['voc_root'], '--model_path',
                      tmp_path / 'x.pth', '--cuda', 'true', monkeypatch=monkeypatch)
    assert status == 1 and 'no CUDA device' in log and '--cuda false' in log
