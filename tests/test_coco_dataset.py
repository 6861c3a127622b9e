"""COCO60LPGDataset on the small COCO dataset of conftest (the `coco_root` fixture), after parseCOCO."""
import os

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from datasets.coco import COCO60LPGDataset, coco_image_id, load_bbox_annos
from datasets.constants import MEAN_BGR
from datasets.io import read_image_bgr
from tests.conftest import BENCH60, ELEPHANT60, TOOTHBRUSH60, TRUCK60, expected_labels

ID1, ID42 = '000000000001', '000000000042'


def test_coco_image_id():
    assert coco_image_id(42) == coco_image_id('42') == '000000000042'
    with pytest.raises(ValueError, match='abc'):
        coco_image_id('abc')


def test_samples_one_per_image_and_class(coco_root):
    dataset = COCO60LPGDataset(coco_root, crop_size=16)
    # non-VOC classes in order of first appearance; image 2 (VOC only) and 3 (no annotations) give none
    assert dataset.samples == [(ID1, ELEPHANT60), (ID1, TRUCK60), (ID1, TOOTHBRUSH60), (ID42, BENCH60)]
    assert len(dataset) == 4
    assert COCO60LPGDataset(coco_root, crop_size=16, max_images=1).samples == dataset.samples[:3]
    os.remove(os.path.join(coco_root, 'train2017_seg60', f'{ID1}.png'))
    assert COCO60LPGDataset(coco_root, crop_size=16).samples == [(ID42, BENCH60)]


def test_sample_values_without_random_geometry(coco_root):
    dataset = COCO60LPGDataset(coco_root, crop_size=32, scales=(1.0,), flip=False)
    image, box_mask, target, class60 = dataset[0]
    assert class60 == ELEPHANT60
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert box_mask.shape == (1, 32, 32) and box_mask.dtype == torch.float32
    assert target.shape == (8, 8) and target.dtype == torch.long

    jpeg = read_image_bgr(os.path.join(coco_root, 'train2017', f'{ID1}.jpg'))
    np.testing.assert_allclose(image[:, :20, :30].numpy(), (jpeg - MEAN_BGR).transpose(2, 0, 1), atol=1e-4)
    assert (image[:, 20:] == 0).all() and (image[:, :, 30:] == 0).all()

    expected_box = np.zeros((32, 32), np.float32)
    expected_box[2:16, 2:26] = 1   # annotation 101
    expected_box[8:13, 10:16] = 1  # annotation 105
    np.testing.assert_array_equal(box_mask[0].numpy(), expected_box)

    seg60 = np.zeros((32, 32), np.uint8)
    seg60[:20, :30] = expected_labels()[1][1]
    # downsampled by 4 at the top-left pixel of each cell, as the release's cv2.INTER_NEAREST does
    expected_target = cv2.resize((seg60 == ELEPHANT60).astype(np.uint8), (8, 8), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(expected_target, (seg60 == ELEPHANT60)[::4, ::4])
    np.testing.assert_array_equal(target.numpy(), expected_target)
    assert target.sum() > 0

    _, box_mask, target, class60 = dataset[3]
    assert class60 == BENCH60
    expected_box = np.zeros((32, 32), np.float32)
    expected_box[5:11, 0:3] = 1
    expected_box[8:12, 8:12] = 1
    np.testing.assert_array_equal(box_mask[0].numpy(), expected_box)


def test_random_crops_overlap_the_class_boxes(coco_root):
    dataset = COCO60LPGDataset(coco_root, crop_size=8, seed=3)
    for _ in range(25):
        for index in range(len(dataset)):
            image, box_mask, target, _ = dataset[index]
            assert image.shape == (3, 8, 8) and box_mask.shape == (1, 8, 8) and target.shape == (2, 2)
            assert box_mask.any()
            assert set(box_mask.unique().tolist()) <= {0.0, 1.0} and set(target.unique().tolist()) <= {0, 1}
    images, box_masks, targets, classes = next(iter(DataLoader(dataset, batch_size=4)))
    assert images.shape == (4, 3, 8, 8) and box_masks.shape == (4, 1, 8, 8) and targets.shape == (4, 2, 2)
    assert classes.tolist() == [ELEPHANT60, TRUCK60, TOOTHBRUSH60, BENCH60]


def test_missing_inputs_tell_to_run_parse_coco(tmp_path):
    with pytest.raises(FileNotFoundError, match='parseCOCO'):
        COCO60LPGDataset(str(tmp_path))
    os.makedirs(tmp_path / 'train2017_seg60')
    with pytest.raises(FileNotFoundError, match='coco_train2017_bbox_annos.json'):
        COCO60LPGDataset(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='parseCOCO'):
        load_bbox_annos(str(tmp_path))


def test_malformed_bbox_json(tmp_path):
    path = tmp_path / 'annotations' / 'coco_train2017_bbox_annos.json'
    path.parent.mkdir()
    path.write_text('{"1": [[0, 0, 1, 1, 12]]}')
    with pytest.raises(ValueError, match='unknown COCO category 12'):
        load_bbox_annos(str(tmp_path))
    path.write_text('{"1": [[0, 0, 1]]}')
    with pytest.raises(ValueError, match='coco_train2017_bbox_annos.json'):
        load_bbox_annos(str(tmp_path))
