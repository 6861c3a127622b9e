"""ScalePadCropFlip keeps image, labels and box masks aligned, and its crops overlap the given box."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from datasets.transforms import ScalePadCropFlip, nearest_centres, nearest_top_left


def test_labels_stay_a_function_of_the_image_without_scaling():
    rng = np.random.default_rng(0)
    augment = ScalePadCropFlip(48, nearest_top_left, scales=(1.0,), rng=np.random.default_rng(1))
    for _ in range(50):
        height, width = rng.integers(20, 80, 2)
        image = rng.normal(size=(height, width, 3)).astype(np.float32)
        image[..., 0][image[..., 0] == 0] = 0.5  # 0 marks padding below
        label = (image[..., 0] > 0).astype(np.uint8)
        out_image, (out_label,) = augment(image, [label], [255])
        assert out_image.shape == (48, 48, 3) and out_label.shape == (48, 48)
        valid = out_label != 255
        assert (out_image[~valid] == 0).all()
        np.testing.assert_array_equal(out_label[valid], (out_image[..., 0][valid] > 0).astype(np.uint8))
        assert valid.sum() == min(height, 48) * min(width, 48)


def coordinate_masks(height, width):
    ys, xs = np.mgrid[:height, :width].astype(np.int32)
    return xs, ys


@pytest.mark.parametrize('label_resize', [nearest_top_left, nearest_centres])
def test_image_labels_and_box_mask_stay_aligned_under_scaling(label_resize):
    """Source coordinates travel as masks (nearest) and as image channels (linear): after any
    augmentation every label equals its function of the source pixel, and the image agrees with the
    masks to within the sub-pixel difference between linear and nearest sampling."""
    rng = np.random.default_rng(0)
    augment = ScalePadCropFlip(40, label_resize, rng=np.random.default_rng(2))
    flips = 0
    for _ in range(100):
        height, width = (int(v) for v in rng.integers(15, 70, 2))
        xs, ys = coordinate_masks(height, width)
        label = ((xs // 3 + ys // 5) % 4).astype(np.uint8)
        x1, y1 = int(rng.integers(0, width - 2)), int(rng.integers(0, height - 2))
        x2, y2 = int(rng.integers(x1 + 1, width)), int(rng.integers(y1 + 1, height))
        box = np.zeros((height, width), np.uint8)
        box[y1:y2 + 1, x1:x2 + 1] = 1
        image = np.stack([xs, ys, np.ones_like(xs)], axis=-1).astype(np.float32)
        out_image, (out_label, out_box, out_xs, out_ys) = augment(
            image, [label, box, xs, ys], [255, 0, -1, -1], overlap_box=(x1, y1, x2, y2))
        valid = out_xs >= 0
        assert ((out_ys >= 0) == valid).all() and ((out_image[..., 2] > 0.5) == valid).all()
        assert (out_label[~valid] == 255).all() and (out_box[~valid] == 0).all()
        source_x, source_y = out_xs[valid], out_ys[valid]
        np.testing.assert_array_equal(out_label[valid], (source_x // 3 + source_y // 5) % 4)
        inside = (source_x >= x1) & (source_x <= x2) & (source_y >= y1) & (source_y <= y2)
        np.testing.assert_array_equal(out_box[valid], inside.astype(np.uint8))
        # linear samples at (j + 0.5) / s - 0.5, nearest at floor(j / s) or floor((j + 0.5) / s): < 1.5 apart
        assert np.abs(out_image[..., 0][valid] - source_x).max() < 1.5
        assert np.abs(out_image[..., 1][valid] - source_y).max() < 1.5
        assert out_box.any(), 'the crop must overlap the box'
        row = out_xs[valid.any(axis=1)][0]
        row = row[row >= 0]
        flips += bool(row.size > 1 and row[0] > row[-1])
    assert 20 < flips < 80


def test_crop_overlaps_small_box_far_from_the_crop():
    augment = ScalePadCropFlip(32, nearest_top_left, rng=np.random.default_rng(3))
    image = np.zeros((200, 300, 3), np.float32)
    for x1, y1 in ((0, 0), (290, 190), (150, 3), (7, 120)):
        box = np.zeros((200, 300), np.uint8)
        box[y1:y1 + 3, x1:x1 + 4] = 1
        for _ in range(40):
            _, (out_box,) = augment(image, [box], [0], overlap_box=(x1, y1, x1 + 3, y1 + 2))
            assert out_box.any()


def test_scale_pad_values_and_sizes():
    augment = ScalePadCropFlip(64, nearest_top_left, scales=(0.5,), flip=False, rng=np.random.default_rng(0))
    image = np.full((40, 50, 3), 7.0, np.float32)
    out_image, (label, mask) = augment(image, [np.ones((40, 50), np.uint8), np.ones((40, 50), np.int64)], [255, 0])
    assert out_image.dtype == np.float32 and mask.dtype == np.int64
    assert (out_image[:20, :25] == 7).all() and (out_image[20:] == 0).all() and (out_image[:, 25:] == 0).all()
    assert (label[:20, :25] == 1).all() and (label[20:] == 255).all() and (label[:, 25:] == 255).all()
    assert mask.sum() == 20 * 25


def test_seeded_generator_reproduces():
    image = np.random.default_rng(0).normal(size=(50, 60, 3)).astype(np.float32)
    label = (image[..., 0] > 0).astype(np.uint8)
    first = ScalePadCropFlip(32, nearest_top_left, rng=np.random.default_rng(5))
    second = ScalePadCropFlip(32, nearest_top_left, rng=np.random.default_rng(5))
    for _ in range(5):
        a, (la,) = first(image, [label], [255])
        b, (lb,) = second(image, [label], [255])
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)


def test_bad_input():
    augment = ScalePadCropFlip(8, nearest_top_left)
    with pytest.raises(ValueError, match='mask shape'):
        augment(np.zeros((4, 4, 3), np.float32), [np.zeros((4, 5))], [0])
    with pytest.raises(ValueError, match='pad values'):
        augment(np.zeros((4, 4, 3), np.float32), [np.zeros((4, 4))], [])
    with pytest.raises(ValueError, match='crop_size'):
        ScalePadCropFlip(0, nearest_top_left)
    with pytest.raises(TypeError, match='label_resize'):
        ScalePadCropFlip(8, 'nearest')


def test_int_seed_follows_torch_seed():
    augment = ScalePadCropFlip(8, nearest_top_left, seed=7)
    torch.manual_seed(1)
    first = augment.rng.random(4)
    torch.manual_seed(1)
    again = ScalePadCropFlip(8, nearest_top_left, rng=7).rng.random(4)
    other_seed = ScalePadCropFlip(8, nearest_top_left, seed=8).rng.random(4)
    torch.manual_seed(2)
    other_torch_seed = augment.rng.random(4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other_seed) and not np.array_equal(first, other_torch_seed)


class _Draws(Dataset):
    def __init__(self):
        self.augment = ScalePadCropFlip(8, nearest_top_left, seed=0)

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return torch.from_numpy(self.augment.rng.random(4))


def test_dataloader_workers_draw_different_augmentations():
    draws = list(DataLoader(_Draws(), batch_size=1, num_workers=2))
    assert not torch.equal(draws[0], draws[1])
