"""The backbone and dataset registries: a backbone or a dataset added in one place reaches every script.

A toy backbone is registered in-process, then trained (main.py), tested with CRF (test.py) and read by a
round-2 generator (genPseudoMasks.py) through the scripts' own `main` functions.
"""
import ast
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import genPseudoMasks
import main as train_backbone
import test as test_backbone
from datasets.registry import DATASETS, DatasetSpec, get_dataset, register_dataset
from datasets.synthetic import make_voc_like
from datasets.voc import read_split, split_file
from models.backbones import BACKBONES, BackboneSpec, CRFParams, Schedule, build_backbone, register_backbone
from models.lpg import LPGNet
from tests.conftest import ROOT, mean_iou
from utils.engine import layout
from utils.engine.checkpoint import load_checkpoint, load_weights, save_checkpoint
from utils.pseudo_masks.methods import mask_dir


class ToyNet(nn.Module):
    """Two convolutions, output stride 2."""

    def __init__(self, num_classes):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x):
        return self.head(self.body(x))


TOY = BackboneSpec(
    name='toy', build=ToyNet,
    schedule=Schedule(lr=0.01, batch_size=2, iter_size=1, num_iterations=2, num_save_model=1),
    is_classifier=lambda name: name.startswith('head.'), bias_lr_mult=3.0,
    crf_params=CRFParams(iter_max=2, pos_w=3, pos_xy_std=3, bi_w=4, bi_xy_std=20, bi_rgb_std=5),
    pad_to_test_size=True)


@pytest.fixture
def toy_backbone():
    register_backbone(TOY)
    yield TOY
    BACKBONES.pop(TOY.name)


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory):
    return make_voc_like(str(tmp_path_factory.mktemp('voc')), num_train=4, num_val=2, image_size=64, seed=5)


def parse(script, *flags):
    return script.get_args_parser().parse_args([str(flag) for flag in flags])


def test_built_in_registries():
    # The release's two backbones, each built with its checkpoint's head (a registered one may join them).
    assert {'vgg16', 'resnet101'} <= set(BACKBONES)
    assert build_backbone('resnet101', 21).base.aspp.c0.out_channels == 21
    assert get_dataset('voc').num_classes == 21 and get_dataset('coco').num_classes == 61
    assert get_dataset('coco').classes[:3] == ('background', 'truck', 'traffic light')  # COCO 8, 10 -> 1, 2
    assert build_backbone('vgg16', 61).fc8.out_channels == 61
    with pytest.raises(ValueError, match="'toy'"):
        build_backbone('toy', 21)


def test_a_registered_backbone_trains_tests_and_generates(toy_backbone, voc_root, tmp_path):
    # main.py: the toy schedule fills the unset flags and the toy rule sets the lr groups.
    save = tmp_path / 'toy'
    final = train_backbone.main(parse(train_backbone, '--root_path', voc_root, '--label_path_name',
                                      'SegmentationClassAug', '--model_type', 'toy', '--save_path', save,
                                      '--crop_size', 33, '--from_scratch', '--cuda', 'false', '--workers', 0))
    assert final == layout.backbone_weights(save, 'toy') and os.path.isfile(final)
    state = load_checkpoint(layout.last_checkpoint(save))
    assert state['iteration'] == 2 and state['args']['batch_size'] == 2 and state['args']['lr'] == 0.01
    lrs = sorted(round(group['initial_lr'], 6) for group in state['optimizer']['param_groups'])
    assert lrs == [0.01, 0.03, 0.1, 0.2]  # body weights 1x, body biases 3x, head weight 10x, head bias 20x
    load_weights(ToyNet(21), final)

    # test.py: padded to --test_size because the entry says so, then DenseCRF with the toy parameters.
    results = test_backbone.main(parse(test_backbone, '--type', 'crf', '--root_path', voc_root, '--model_type', 'toy',
                                       '--model_path', final, '--test_size', 80, '--n_jobs', 1, '--cuda', 'false'))
    eval_dir = layout.eval_dir(final, 'val')
    val_ids = read_split(split_file(voc_root, 'val'))
    assert os.path.isfile(layout.scores_file(eval_dir, 'crf'))
    assert results['with CRF']['Mean IoU'] == pytest.approx(
        mean_iou(layout.eval_subdir(eval_dir, 'crf'), os.path.join(voc_root, 'SegmentationClass'), val_ids, 21))
    with np.load(os.path.join(layout.eval_subdir(eval_dir, 'logits'), f'{val_ids[0]}.npz')) as logits:
        assert tuple(logits['input_size']) == (80, 80) and logits['logits'].shape == (21, 40, 40)
    assert sorted(os.listdir(layout.eval_subdir(eval_dir, 'crf'))) == sorted(f'{i}.png' for i in val_ids)

    # genPseudoMasks.py round 2: the round-1 backbone is the toy one.
    lpg_path = tmp_path / 'LPG_Round2.pth'
    torch.manual_seed(0)
    save_checkpoint(lpg_path, **LPGNet(in_channels=5).state_dict())
    out = genPseudoMasks.main(parse(genPseudoMasks, '--dataset', 'voc', '--round', 2, '--model_path_test', lpg_path,
                                    '--model_type', 'toy', '--voc_root_dir', voc_root, '--voc_proposals_dir',
                                    tmp_path / 'pseudo', '--init_voc_model_path', final, '--voc_test_size', 128,
                                    '--cuda', 'false', '--workers', 0))
    assert out == mask_dir(str(tmp_path / 'pseudo'), 'lpg', 'toy', 2)
    train_ids = read_split(split_file(voc_root, 'train_aug'))
    assert sorted(name for name in os.listdir(out) if name.endswith('.png')) == sorted(f'{i}.png' for i in train_ids)
    assert Image.open(os.path.join(out, f'{train_ids[0]}.png')).size == (64, 64)


def test_a_registered_dataset_gets_its_generation_flags(voc_root, tmp_path):
    voc = get_dataset('voc')
    mini = DatasetSpec(name='mini', title='mini VOC', classes=voc.classes, default_split='val', test_size=128,
                       box_items=voc.box_items, box_inputs=voc.box_inputs, segmentation_items=voc.segmentation_items)
    register_dataset(mini)
    try:
        args = parse(genPseudoMasks, '--dataset', 'mini', '--method', 'box', '--mini_root_dir', voc_root,
                     '--mini_proposals_dir', tmp_path, '--cuda', 'false', '--workers', 0)
        assert args.mini_test_size == 128 and args.mini_split == 'val'
        out = genPseudoMasks.main(args)
    finally:
        DATASETS.pop('mini')
    assert out == mask_dir(str(tmp_path), 'box', None, None)
    assert sorted(name for name in os.listdir(out) if name.endswith('.png')) == sorted(
        f'{i}.png' for i in read_split(split_file(voc_root, 'val')))


def test_scripts_hold_no_literal_class_counts():
    """Class counts come from the dataset registry, never from a 21 or a 61 in a script."""
    for script in ('main.py', 'trainLPG.py', 'genPseudoMasks.py', 'test.py', 'run_rounds.py'):
        tree = ast.parse(open(os.path.join(ROOT, script)).read())
        literals = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in (21, 61)]
        assert literals == [], script
