"""The release's meaning, where training results depend on it: where labels are sampled when they are rescaled
(PIL's cell centres or cv2's top-left corners, as each of the release's datasets does), and what --match_release
changes: truncated scaled sides and the release's effective optimiser (learning-rate groups, weight decay, batch
norm)."""
import os

import cv2
import numpy as np
import torch
from PIL import Image

import main as train_backbone
from datasets.lpg_samples import LPGSampleDataset
from datasets.transforms import ScalePadCropFlip, centre_indices, nearest_centres, nearest_top_left, top_left_indices
from models import DeepLabLargeFOV, DeepLabV2ResNet101, get_backbone
from tests.conftest import parse


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
