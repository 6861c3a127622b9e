"""The release's meaning, its commands: the published flags of trainLPG.py, main.py and test.py mean what they
meant in the release, and run_rounds.py runs each round with the backbones and initialisation the release used
(the COCO-60 backbone it chooses, the from-scratch initialisation it passes on)."""
import json
import os

import pytest
import torch

import main as train_backbone
import run_rounds
import test as test_backbone
import trainLPG
from models import DeepLabLargeFOV, LPGNet
from tests.conftest import cli, parse
from utils.engine import layout
from utils.engine.checkpoint import load_checkpoint, save_checkpoint
from utils.engine.errors import InputError
from utils.engine.layout import RunLayout
from utils.step_runner import step_argv


# ---------------------------------------------------------------------------------------------- published flags
def test_coco_train_size_is_the_crop_size(coco_root):
    args = parse(trainLPG, '--coco_root_dir', coco_root, '--model_save_path', 'x', '--coco_train_size', 128)
    assert args.crop_size == 128 and args.max_images is None
    dataset = trainLPG.build_dataset(args)
    image, box_mask, target, _ = dataset[0]
    assert image.shape == (3, 128, 128) and box_mask.shape == (1, 128, 128) and target.shape == (32, 32)
    assert len(dataset.boxes) == 2  # every image with non-VOC masks, not the first 128
    assert parse(trainLPG, '--coco_root_dir', coco_root, '--model_save_path', 'x').crop_size == 512
    assert parse(trainLPG, '--coco_root_dir', coco_root, '--model_save_path', 'x', '--crop_size', 256).crop_size == 256
    limited = trainLPG.build_dataset(parse(trainLPG, '--coco_root_dir', coco_root, '--model_save_path', 'x',
                                           '--crop_size', 128, '--max_images', 1))
    assert len(limited.boxes) == 1


def test_round_one_refuses_a_backbone(coco_root, tmp_path):
    args = parse(trainLPG, '--coco_root_dir', coco_root, '--round', 1, '--init_seg_model_path', tmp_path / 'coco.pth',
                 '--model_save_path', tmp_path / 'lpg')
    with pytest.raises(InputError, match='--round 1.*--init_seg_model_path'):
        trainLPG.main(args)
    assert not (tmp_path / 'lpg').exists()


def test_the_release_trainLPG_command_runs_as_published(coco_root, tmp_path, monkeypatch):
    """`trainLPG.py --coco_root_dir R --init_seg_model_path S --init_lpg_model_path L`, the release's README
    command (no --round, no save folder), trains round 2 from a 5-channel generator and a 61-class VGG16."""
    seg_path, lpg_path = tmp_path / 'vgg16_61.pth', tmp_path / 'LPG_Round2.pth'
    torch.manual_seed(0)
    torch.save(DeepLabLargeFOV(num_classes=61).state_dict(), seg_path)
    start = LPGNet(in_channels=5).state_dict()
    torch.save(start, lpg_path)
    monkeypatch.chdir(tmp_path)
    published = ['--coco_root_dir', coco_root, '--init_seg_model_path', seg_path, '--init_lpg_model_path', lpg_path]
    small = ['--coco_train_size', 128, '--batch_size', 2, '--num_max_iterations', 2, '--cuda', 'false', '--workers', 0]
    assert cli(trainLPG, *published, *small, monkeypatch=monkeypatch) == (0, '')
    trained = load_checkpoint(str(tmp_path / 'LPG_checkpoints' / 'Round_2' / 'LPG_Round2.pth'))
    assert trained['pre.0.conv.weight'].shape[1] == 5
    assert not torch.equal(trained['pre.0.conv.weight'], start['pre.0.conv.weight'])
    assert load_checkpoint(str(tmp_path / 'LPG_checkpoints' / 'Round_2' / 'checkpoint_last.pth'))['iteration'] == 2

    status, message = cli(trainLPG, '--coco_root_dir', coco_root, '--init_lpg_model_path', lpg_path, *small,
                          '--model_save_path', tmp_path / 'other', monkeypatch=monkeypatch)
    assert status == 2 and '--init_seg_model_path' in message and '--round 1' in message
    assert '\n' not in message and not (tmp_path / 'other').exists()


def test_main_needs_label_path_name(voc_root, capsys):
    with pytest.raises(SystemExit):
        parse(train_backbone, '--root_path', voc_root, '--save_path', 'x')
    assert '--label_path_name' in capsys.readouterr().err


def test_main_refuses_a_silent_random_start(voc_root, tmp_path):
    args = parse(train_backbone, '--root_path', voc_root, '--label_path_name', 'SegmentationClassAug',
                 '--save_path', tmp_path / 'out', '--cuda', 'false')
    with pytest.raises(InputError, match='--init_model_path.*--from_scratch'):
        train_backbone.main(args)
    assert not (tmp_path / 'out').exists()


def test_main_says_when_it_trains_on_ground_truth(voc_root, tmp_path, capsys):
    flags = ['--root_path', voc_root, '--save_path', tmp_path / 'out', '--from_scratch', '--num_iterations', 1,
             '--batch_size', 2, '--crop_size', 33, '--cuda', 'false', '--workers', 0]
    train_backbone.main(parse(train_backbone, '--label_path_name', 'SegmentationClassAug', *flags))
    assert 'ground-truth masks' in capsys.readouterr().out
    pseudo = tmp_path / 'pseudo'
    pseudo.mkdir()
    for name in os.listdir(os.path.join(voc_root, 'SegmentationClassAug')):
        (pseudo / name).write_bytes(open(os.path.join(voc_root, 'SegmentationClassAug', name), 'rb').read())
    train_backbone.main(parse(train_backbone, '--label_path_name', pseudo, '--overwrite', *flags))
    assert 'ground-truth' not in capsys.readouterr().out


def test_crf_without_model_path_reads_the_last_test_run(voc_root, tmp_path, monkeypatch, capsys):
    model_path = tmp_path / 'models' / 'vgg16_final.pth'
    torch.manual_seed(0)
    save_checkpoint(model_path, **DeepLabLargeFOV(num_classes=21).state_dict())
    monkeypatch.chdir(tmp_path)
    crf = ['--type', 'crf', '--root_path', voc_root, '--model_type', 'vgg16', '--n_jobs', 1, '--cuda', 'false']
    with pytest.raises(InputError, match='there is none'):
        test_backbone.main(parse(test_backbone, *crf))
    test_backbone.main(parse(test_backbone, '--type', 'test', '--root_path', voc_root, '--model_type', 'vgg16',
                             '--model_path', model_path, '--test_size', 65, '--cuda', 'false'))
    capsys.readouterr()
    results = test_backbone.main(parse(test_backbone, *crf))
    eval_dir = layout.eval_dir(model_path, 'val')
    assert f'using the logits of the last --type test run of vgg16 started here: {eval_dir}' in capsys.readouterr().out
    assert results['model_path'] == str(model_path) and 'with CRF' in results
    assert json.load(open(layout.scores_file(eval_dir, 'crf')))['num_images'] == 2
    with pytest.raises(InputError, match='resnet101'):  # another model type has no test run here
        test_backbone.main(parse(test_backbone, *crf[:5], 'resnet101', *crf[6:]))


# ---------------------------------------------------------------------------------------------- run_rounds.py
def recorded_round(tmp_path, *flags):
    """The (script, flags) run_rounds.py would run for round 2, without running them."""
    args = parse(run_rounds, '--voc_root_dir', 'voc', '--coco_root_dir', 'coco', '--work_dir', tmp_path,
                 '--from_scratch', *flags)
    runner = run_rounds.Runner(args)
    steps = []
    runner.step = lambda name, script, settings: steps.append((script, step_argv(script, settings)))
    run_rounds.run_round(runner, 2, RunLayout(tmp_path), last_round=False)
    return steps


def flag(flags, name):
    return flags[flags.index(name) + 1]


def test_run_rounds_reads_a_vgg16_coco_backbone_on_the_resnet_track(tmp_path):
    run = RunLayout(tmp_path)
    steps = recorded_round(tmp_path, '--model_type', 'resnet101')
    lpg = next(f for script, f in steps if script == 'trainLPG.py')
    assert flag(lpg, '--seg_model_type') == 'vgg16'
    assert flag(lpg, '--init_seg_model_path') == run.backbone('coco', 'vgg16', 1)
    coco_steps = [f for script, f in steps if '--dataset' in f and flag(f, '--dataset') == 'coco']
    voc_steps = [f for script, f in steps if '--dataset' in f and flag(f, '--dataset') == 'voc']
    assert [flag(f, '--model_type') for f in coco_steps] == ['vgg16', 'vgg16']  # COCO-60 masks, COCO-60 backbone
    assert [flag(f, '--model_type') for f in voc_steps] == ['resnet101', 'resnet101']  # VOC masks, VOC backbone
    assert flag(voc_steps[0], '--init_voc_model_path') == run.backbone('voc', 'resnet101', 1)

    steps = recorded_round(tmp_path, '--model_type', 'resnet101', '--coco_model_type', 'resnet101')
    lpg = next(f for script, f in steps if script == 'trainLPG.py')
    assert flag(lpg, '--seg_model_type') == 'resnet101'


def test_run_rounds_passes_the_from_scratch_initialisation_to_the_backbone_trainings(tmp_path):
    for flags, scheme in (((), 'pytorch'), (('--from_scratch', 'kaiming'), 'kaiming')):
        trainings = [f for script, f in recorded_round(tmp_path, *flags) if script == 'main.py']
        assert len(trainings) == 2 and all(flag(f, '--from_scratch') == scheme for f in trainings)


def test_run_rounds_refuses_to_start_without_initial_weights(tmp_path):
    args = parse(run_rounds, '--voc_root_dir', 'voc', '--coco_root_dir', 'coco', '--work_dir', tmp_path / 'w')
    with pytest.raises(InputError, match='--voc_imagenet_init and --coco_imagenet_init.*--from_scratch'):
        run_rounds.main(args)
    assert not (tmp_path / 'w').exists()


def test_run_rounds_names_the_imagenet_start_apart_from_the_release_backbone_flag(tmp_path, monkeypatch):
    """run_rounds.py's ImageNet start of every backbone is --voc_imagenet_init; its old name, one word order from
    the release's --init_voc_model_path (the round R-1 backbone), is refused naming the new one."""
    base = ['--voc_root_dir', 'voc', '--coco_root_dir', 'coco', '--work_dir', tmp_path / 'w']
    status, message = cli(run_rounds, *base, '--voc_init_model_path', 'init.pth', monkeypatch=monkeypatch)
    assert status == 2 and '--voc_init_model_path is now --voc_imagenet_init' in message
    assert not (tmp_path / 'w').exists()
    args = parse(run_rounds, *base, '--voc_imagenet_init', 'a.pth', '--coco_imagenet_init', 'b.pth')
    assert (args.voc_imagenet_init, args.coco_imagenet_init) == ('a.pth', 'b.pth')
