"""Small-budget training of the generator: the loss weighted inside the boxes (trainLPG.py --box_loss_weight), the
recipe's round-1 generator writing foreground, and a generator that learned nothing stopping the run loudly."""
import json
import os

import pytest
import torch
import torch.nn.functional as F

import genPseudoMasks
import run_rounds
import trainLPG
from datasets.synthetic import make_demo_data
from models.lpg import LPGNet, box_weighted_cross_entropy
from tests.conftest import cli, run
from utils.engine import layout
from utils.engine.checkpoint import save_checkpoint


def test_box_weighted_cross_entropy_is_the_release_loss_at_weight_1():
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 2, 4, 4), torch.randint(0, 2, (2, 4, 4))
    box_masks = torch.zeros(2, 1, 16, 16)
    box_masks[0, 0, 4:12, 0:8] = 1  # cells (1..2, 0..1) of sample 0: top-left pixels 4, 8 and 0, 4
    assert torch.equal(box_weighted_cross_entropy(logits, targets, box_masks, 1.0), F.cross_entropy(logits, targets))
    pixel_loss = F.cross_entropy(logits, targets, reduction='none')
    weights = torch.ones(2, 4, 4)
    weights[0, 1:3, 0:2] = 5
    expected = (pixel_loss * weights).sum() / weights.sum()
    assert torch.allclose(box_weighted_cross_entropy(logits, targets, box_masks, 5.0), expected)


def test_box_loss_weight_and_warmup_are_recorded_and_default_to_the_release():
    args = trainLPG.get_args_parser().parse_args([])
    assert args.box_loss_weight == 1.0 and args.warmup_iterations == 0
    assert {'box_loss_weight', 'warmup_iterations'} <= trainLPG.OUTPUT_FLAGS


@pytest.mark.parametrize('flags', [['--box_loss_weight', '0'], ['--box_loss_weight', '-1'],
                                   ['--warmup_iterations', '-5']])
def test_bad_recipe_values_are_refused_in_one_line(flags, tmp_path, monkeypatch):
    code, message = cli(trainLPG, '--coco_root_dir', tmp_path, '--round', 1, '--model_save_path', tmp_path / 'out',
                        *flags, monkeypatch=monkeypatch)
    assert code == 2 and f'argument {flags[0]}: {flags[1]} is outside the values that work' in message
    assert not os.path.exists(tmp_path / 'out')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('recipe')
    coco, voc = make_demo_data(str(root / 'data'), num_coco=60, num_voc_train=8, num_voc_val=2, image_size=128,
                               seed=3)
    run('utils/parseCOCO.py', '--dataRoot', coco)
    return dict(root=root, coco=coco, voc=voc)


def fg_recall(voc, masks, out):
    """Foreground recall inside the boxes of a folder of pseudo masks, as test.py --type masks reports it."""
    run('test.py', '--type', 'masks', '--root_path', voc, '--pred_dir', masks, '--save_path', out)
    return json.load(open(layout.mask_scores_file(out, masks)))['pseudo masks']['box foreground']['recall']


def test_the_small_recipe_round1_generator_writes_foreground(tiny):
    """The demo's recipe (Adam lr 1e-3, batch 8, crop 128, --box_loss_weight 5) on tiny generated data: after 150
    iterations the round-1 generator's masks cover most of the objects inside the boxes."""
    out = tiny['root'] / 'recipe'
    run('trainLPG.py', '--coco_root_dir', tiny['coco'], '--round', 1, '--model_save_path', out, '--batch_size', 8,
        '--crop_size', 128, '--lr', 1e-3, '--box_loss_weight', 5, '--num_max_iterations', 150, '--num_save_model', 150,
        '--seed', 0, '--deterministic', '--cuda', 'false', '--workers', 0)
    run('genPseudoMasks.py', '--dataset', 'voc', '--round', 1, '--model_path_test', layout.lpg_weights(out, 1),
        '--voc_root_dir', tiny['voc'], '--voc_proposals_dir', out / 'masks', '--voc_test_size', 128,
        '--cuda', 'false', '--workers', 0)
    assert fg_recall(tiny['voc'], out / 'masks' / 'vgg16_Round1', out) > 0.5


def dead_generator(path):
    """A round-1 generator whose last layer is zeroed: equal logits everywhere, so argmax says background."""
    torch.manual_seed(0)
    state = LPGNet(in_channels=4).state_dict()
    state['fm.0.1.weight'].zero_()
    state['fm.0.1.bias'].zero_()
    return str(save_checkpoint(path, **state))


def test_a_generator_that_learned_nothing_ends_generation_with_one_line(data, tmp_path, monkeypatch):
    lpg = dead_generator(tmp_path / 'LPG_Round1.pth')
    flags = ['--dataset', 'voc', '--round', 1, '--model_path_test', lpg, '--voc_root_dir', data['voc'],
             '--voc_proposals_dir', tmp_path / 'out', '--voc_test_size', 128, '--cuda', 'false', '--workers', 0]
    code, message = cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)
    assert code != 0 and len(message.splitlines()) == 1
    assert 'no foreground pixel inside any box' in message and '--allow_empty' in message
    folder = tmp_path / 'out' / 'vgg16_Round1'
    assert json.load(open(folder / 'record.json'))['state'] == 'incomplete'  # a rerun does not skip it as done
    assert cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)[0] != 0  # the same on a rerun that writes nothing
    assert cli(genPseudoMasks, *flags, '--allow_empty', monkeypatch=monkeypatch) == (0, '')
    assert json.load(open(folder / 'record.json'))['state'] == 'done'


def test_run_rounds_stops_before_the_backbone_when_the_generator_learned_nothing(data, tmp_path, monkeypatch):
    def train_lpg(runner, run, r, seg_probs='backbone'):  # stands in for training: a generator that learned nothing
        os.makedirs(os.path.dirname(run.lpg(r)), exist_ok=True)
        dead_generator(run.lpg(r))
    monkeypatch.setattr('utils.rounds.train_lpg', train_lpg)
    work = tmp_path / 'work'
    code, message = cli(run_rounds, '--voc_root_dir', data['voc'], '--coco_root_dir', data['coco'], '--work_dir', work,
                        '--rounds', 1, '--baselines', '', '--from_scratch', '--voc_test_size', 128, '--cuda', 'false',
                        '--workers', 0, '--overwrite', monkeypatch=monkeypatch)
    assert code != 0 and 'no foreground pixel inside any box' in message
    assert 'step "round 1: VOC pseudo masks" failed' in message
    assert not os.path.exists(work / 'backbone_voc')
