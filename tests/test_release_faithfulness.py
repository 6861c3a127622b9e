"""Where results depend on it, the release's meaning: published flags, where labels are sampled, the release's
effective optimiser behind --match_release, and the COCO-60 backbone run_rounds.py chooses."""
import json
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import main as train_backbone
import run_rounds
import test as test_backbone
import trainLPG
from datasets.errors import InputError
from datasets.lpg_samples import LPGSampleDataset
from datasets.synthetic import make_voc_like
from datasets.transforms import ScalePadCropFlip, centre_indices, nearest_centres, nearest_top_left, top_left_indices
from models import DeepLabLargeFOV, DeepLabV2ResNet101, LPGNet, get_backbone
from tests.conftest import cli
from utils.engine import layout
from utils.engine.checkpoint import load_checkpoint, save_checkpoint
from utils.engine.layout import RunLayout


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
    assert status == 1 and '--init_seg_model_path' in message and '--round 1' in message
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


# ---------------------------------------------------------------------------------------------- label geometry
def resize_cases(rng):
    """(height, width, out_height, out_width): the release's sizes, odd sides at every augmentation scale
    (both truncated and rounded), and random ones."""
    cases = [(321, 321, 41, 41), (513, 513, 65, 65), (65, 65, 9, 9), (321, 321, 81, 81), (512, 512, 128, 128),
             (510, 510, 127, 127),
             (138, 39, 39, 138)]  # 138 -> 39: a centre on an integer, where PIL's rounding decides
    for height, width in ((375, 500), (333, 481), (17, 23), (321, 321)):
        for scale in (0.5, 0.75, 1.25, 1.5):
            cases += [(height, width, int(height * scale), int(width * scale)),
                      (height, width, round(height * scale), round(width * scale))]
    cases += [tuple(int(v) for v in (*rng.integers(5, 200, 2), *rng.integers(1, 250, 2))) for _ in range(60)]
    return cases


def test_nearest_centres_is_pil_nearest():
    rng = np.random.default_rng(0)
    for height, width, out_height, out_width in resize_cases(rng):
        labels = rng.integers(0, 256, (height, width)).astype(np.uint8)
        expected = np.asarray(Image.fromarray(labels).resize((out_width, out_height), Image.NEAREST))
        where = f'{height}x{width} -> {out_height}x{out_width}'
        np.testing.assert_array_equal(nearest_centres(labels, (out_height, out_width)), expected, err_msg=where)
        got = nearest_centres(torch.from_numpy(labels), (out_height, out_width)).numpy()
        np.testing.assert_array_equal(got, expected, err_msg=where)
    assert centre_indices(321, 41)[:4].tolist() == [3, 11, 19, 27]
    assert centre_indices(512, 128)[:3].tolist() == [2, 6, 10]
    batch = torch.from_numpy(rng.integers(0, 21, (2, 321, 321)))
    resized = nearest_centres(batch, (41, 41))
    assert resized.shape == (2, 41, 41) and resized.dtype == torch.int64


def test_nearest_top_left_is_cv2_inter_nearest():
    rng = np.random.default_rng(1)
    for height, width, out_height, out_width in resize_cases(rng):
        labels = rng.integers(0, 256, (height, width)).astype(np.uint8)
        expected = cv2.resize(labels, (out_width, out_height), interpolation=cv2.INTER_NEAREST)
        where = f'{height}x{width} -> {out_height}x{out_width}'
        np.testing.assert_array_equal(nearest_top_left(labels, (out_height, out_width)), expected, err_msg=where)
        got = nearest_top_left(torch.from_numpy(labels.astype(np.int64)), (out_height, out_width)).numpy()
        np.testing.assert_array_equal(got, expected, err_msg=where)
    assert top_left_indices(512, 128)[:3].tolist() == [0, 4, 8]
    assert top_left_indices(510, 127)[-1] <= 509


def test_lpg_target_samples_the_top_left_of_each_cell(tmp_path):
    """A class whose mask is its box: the target is the crop-size box mask at rows and columns 0, 4, 8, ...
    (where inference reads the generator's output back), at every scale and crop."""
    height, width, class_id = 90, 117, 3
    box = (13, 21, 70, 58)  # odd corners: centre sampling (2, 6, 10, ...) would move the edges
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'a.jpg'), image)
    mask = np.zeros((height, width), np.uint8)
    mask[box[1]:box[3] + 1, box[0]:box[2] + 1] = class_id
    os.makedirs(tmp_path / 'masks')
    Image.fromarray(mask).save(tmp_path / 'masks' / 'a.png')
    dataset = LPGSampleDataset({'a': str(tmp_path / 'a.jpg')}, {'a': [(class_id, *box)]}, str(tmp_path / 'masks'),
                               num_classes=4, source='boxes.json', what='test', crop_size=64, seed=0)
    differs_from_centres = 0
    for _ in range(30):
        _, box_mask, target, sample_class = dataset[0]
        crop_mask = box_mask[0].long()
        assert sample_class == class_id and target.shape == (16, 16)
        torch.testing.assert_close(target, crop_mask[::4, ::4], rtol=0, atol=0)
        differs_from_centres += not torch.equal(target, crop_mask[2::4, 2::4])
    assert differs_from_centres > 0


def test_main_rescales_labels_like_pil_nearest(voc_root):
    """At scale 0.5 the label of a main.py sample is PIL's NEAREST rescale of the source label (cell centres,
    as the release's VOC dataset), not cv2's top-left sampling."""
    args = parse(train_backbone, '--root_path', voc_root, '--label_path_name', 'SegmentationClassAug',
                 '--split', 'train', '--from_scratch', '--save_path', 'x', '--crop_size', 64)
    dataset = train_backbone.build_dataset(train_backbone.fill_schedule_defaults(args))
    dataset.augment.scales, dataset.augment.flip = (0.5,), False
    image_id, _, label_path = dataset.items[0]
    source = Image.open(label_path)
    expected = np.asarray(source.resize((round(source.width * 0.5), round(source.height * 0.5)), Image.NEAREST))
    _, label, _ = dataset[0]
    height, width = expected.shape
    np.testing.assert_array_equal(label[:height, :width].numpy(), expected)
    assert (label[height:] == 255).all() and (label[:, width:] == 255).all()
    top_left = cv2.resize(np.asarray(source), (width, height), interpolation=cv2.INTER_NEAREST)
    assert not np.array_equal(top_left, expected)  # the two conventions differ on this label


def test_match_release_truncates_scaled_sides():
    image = np.zeros((7, 7, 3), np.float32)
    for round_size, side in ((round, 9), (int, 8)):  # 7 * 1.25 = 8.75
        augment = ScalePadCropFlip(16, nearest_centres, scales=(1.25,), flip=False, rng=np.random.default_rng(0),
                                   round_size=round_size)
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
    with pytest.raises(InputError, match='--voc_init_model_path and --coco_init_model_path.*--from_scratch'):
        run_rounds.main(args)
    assert not (tmp_path / 'w').exists()
