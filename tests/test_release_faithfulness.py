"""Where results depend on it, the release's meaning: published flags, aligned loss labels, the release's
effective optimiser behind --match_release, and the COCO-60 backbone run_rounds.py chooses."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import main as train_backbone
import run_rounds
import test as test_backbone
import trainLPG
from datasets.synthetic import make_voc_like
from datasets.transforms import ScalePadCropFlip, pil_nearest_indices, resize_labels
from models import DeepLabLargeFOV, DeepLabV2ResNet101, get_backbone
from utils import layout
from utils.checkpoint import save_checkpoint
from utils.layout import RunLayout


def parse(script, *flags):
    return script.get_args_parser().parse_args([str(flag) for flag in flags])


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory):
    return make_voc_like(str(tmp_path_factory.mktemp('voc')), num_train=4, num_val=2, image_size=64, seed=5)


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
    with pytest.raises(SystemExit, match='--round 1.*--init_seg_model_path'):
        trainLPG.main(args)
    assert not (tmp_path / 'lpg').exists()


def test_main_needs_label_path_name(voc_root, capsys):
    with pytest.raises(SystemExit):
        parse(train_backbone, '--root_path', voc_root, '--save_path', 'x')
    assert '--label_path_name' in capsys.readouterr().err


def test_main_refuses_a_silent_random_start(voc_root, tmp_path):
    args = parse(train_backbone, '--root_path', voc_root, '--label_path_name', 'SegmentationClassAug',
                 '--save_path', tmp_path / 'out', '--cuda', 'false')
    with pytest.raises(SystemExit, match='--init_model_path.*--from_scratch'):
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
    with pytest.raises(SystemExit, match='there is none'):
        test_backbone.main(parse(test_backbone, *crf))
    test_backbone.main(parse(test_backbone, '--type', 'test', '--root_path', voc_root, '--model_type', 'vgg16',
                             '--model_path', model_path, '--test_size', 65, '--cuda', 'false'))
    capsys.readouterr()
    results = test_backbone.main(parse(test_backbone, *crf))
    eval_dir = layout.eval_dir(model_path, 'val')
    assert f'using the logits of the last --type test run of vgg16 started here: {eval_dir}' in capsys.readouterr().out
    assert results['model_path'] == str(model_path) and 'with CRF' in results
    assert json.load(open(layout.scores_file(eval_dir, 'crf')))['num_images'] == 2
    with pytest.raises(SystemExit, match='resnet101'):  # another model type has no test run here
        test_backbone.main(parse(test_backbone, *crf[:5], 'resnet101', *crf[6:]))


# ---------------------------------------------------------------------------------------------- loss labels
def test_label_resize_samples_cell_centres_like_pil():
    rng = np.random.default_rng(0)
    sizes = [(321, 321, 41, 41), (513, 513, 65, 65), (65, 65, 9, 9), (321, 321, 81, 81), (512, 512, 128, 128),
             (138, 39, 39, 138)]  # 138 -> 39: a centre on an integer, where PIL's rounding decides
    sizes += [tuple(int(v) for v in (*rng.integers(5, 200, 2), *rng.integers(1, 250, 2))) for _ in range(60)]
    for height, width, out_height, out_width in sizes:
        labels = rng.integers(0, 256, (height, width)).astype(np.uint8)
        expected = np.asarray(Image.fromarray(labels).resize((out_width, out_height), Image.NEAREST))
        got = resize_labels(torch.from_numpy(labels), (out_height, out_width)).numpy()
        np.testing.assert_array_equal(got, expected, err_msg=f'{height}x{width} -> {out_height}x{out_width}')
    assert pil_nearest_indices(321, 41)[:4].tolist() == [3, 11, 19, 27]
    batch = torch.from_numpy(rng.integers(0, 21, (2, 321, 321)))
    assert resize_labels(batch, (41, 41)).shape == (2, 41, 41) and resize_labels(batch, (41, 41)).dtype == torch.int64


def test_match_release_truncates_scaled_sides():
    image = np.zeros((7, 7, 3), np.float32)
    for round_size, side in ((round, 9), (int, 8)):  # 7 * 1.25 = 8.75
        augment = ScalePadCropFlip(16, scales=(1.25,), flip=False, rng=np.random.default_rng(0), round_size=round_size)
        _, (mask,) = augment(image, [np.ones((7, 7), np.uint8)], [0])
        assert mask.sum() == side * side


# ---------------------------------------------------------------------------------------------- --match_release
def group_of(optimizer, model):
    """{parameter name: (lr multiplier, weight decay)} for the parameters in the optimizer's groups."""
    by_id = {id(p): name for name, p in model.named_parameters()}
    base = min(group['initial_lr'] for group in optimizer)
    return {by_id[id(p)]: (round(group['initial_lr'] / base, 6), group['weight_decay'])
            for group in optimizer for p in group['params']}


def test_vgg16_groups_default_and_release():
    model, spec = DeepLabLargeFOV(num_classes=21), get_backbone('vgg16')
    default = group_of(spec.training_setup(model, 1e-3, 5e-4), model)
    assert default['features.38.weight'] == (10.0, 5e-4) and default['features.38.bias'] == (20.0, 0.0)
    assert default['features.0.weight'] == (1.0, 5e-4) and default['features.0.bias'] == (2.0, 0.0)
    release = group_of(spec.training_setup(model, 1e-3, 5e-4, match_release=True), model)
    assert release['features.38.weight'] == (1.0, 5e-4) and release['features.38.bias'] == (2.0, 0.0)
    assert set(release) == set(default) == {name for name, _ in model.named_parameters()}


def test_resnet101_groups_and_batch_norm_default_and_release():
    spec = get_backbone('resnet101')
    model = DeepLabV2ResNet101(num_classes=3).train()
    default = group_of(spec.training_setup(model, 2.5e-4, 5e-4), model)
    assert default['base.aspp.c0.weight'] == (10.0, 5e-4) and default['base.aspp.c0.bias'] == (20.0, 0.0)
    assert default['base.layer1.0.conv1.weight'] == (1.0, 5e-4)
    assert not any('bn' in name or 'downsample.1' in name for name in default)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not any(m.training for m in norms)

    model = DeepLabV2ResNet101(num_classes=3).train()
    release = group_of(spec.training_setup(model, 2.5e-4, 5e-4, match_release=True), model)
    assert release['base.aspp.c0.bias'] == (20.0, 0.0) and release['base.layer1.0.conv1.weight'] == (1.0, 5e-4)
    assert not any(name.startswith('base.aspp.') and name.endswith('weight') for name in release)
    assert not any('bn' in name or 'downsample.1' in name for name in release)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.training for m in norms)
    before = norms[0].running_mean.clone()
    model(torch.randn(2, 3, 33, 33))
    assert not torch.equal(norms[0].running_mean, before)  # running statistics update, as in the release
    assert not model.eval().base.layer0[1].training


# ---------------------------------------------------------------------------------------------- run_rounds.py
def recorded_round(tmp_path, *flags):
    """The (script, flags) run_rounds.py would run for round 2, without running them."""
    args = parse(run_rounds, '--voc_root_dir', 'voc', '--coco_root_dir', 'coco', '--work_dir', tmp_path,
                 '--from_scratch', *flags)
    runner = run_rounds.Runner(args)
    steps = []
    runner.step = lambda name, script, step_flags: steps.append((script, [str(f) for f in step_flags]))
    run_rounds.run_round(runner, 2, RunLayout(tmp_path), last_round=False)
    return steps


def flag(flags, name):
    return flags[flags.index(name) + 1]


def test_run_rounds_reads_a_vgg16_coco_backbone_on_the_resnet_track(tmp_path):
    run = RunLayout(tmp_path)
    steps = recorded_round(tmp_path, '--model_type', 'resnet101')
    lpg = next(f for script, f in steps if script == 'trainLPG.py')
    assert flag(lpg, '--seg_model_type') == 'vgg16' and flag(lpg, '--init_seg_model_path') == run.backbone('coco', 'vgg16', 1)
    coco_steps = [f for script, f in steps if '--dataset' in f and flag(f, '--dataset') == 'coco']
    voc_steps = [f for script, f in steps if '--dataset' in f and flag(f, '--dataset') == 'voc']
    assert [flag(f, '--model_type') for f in coco_steps] == ['vgg16', 'vgg16']  # COCO-60 masks, COCO-60 backbone
    assert [flag(f, '--model_type') for f in voc_steps] == ['resnet101', 'resnet101']  # VOC masks, VOC backbone
    assert flag(voc_steps[0], '--init_voc_model_path') == run.backbone('voc', 'resnet101', 1)

    steps = recorded_round(tmp_path, '--model_type', 'resnet101', '--coco_model_type', 'resnet101')
    lpg = next(f for script, f in steps if script == 'trainLPG.py')
    assert flag(lpg, '--seg_model_type') == 'resnet101'


def test_run_rounds_refuses_to_start_without_initial_weights(tmp_path):
    args = parse(run_rounds, '--voc_root_dir', 'voc', '--coco_root_dir', 'coco', '--work_dir', tmp_path / 'w')
    with pytest.raises(SystemExit, match='--voc_init_model_path and --coco_init_model_path.*--from_scratch'):
        run_rounds.main(args)
    assert not (tmp_path / 'w').exists()
