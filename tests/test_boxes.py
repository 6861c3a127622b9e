"""Inputs for pseudo-mask generation: padding, box masks, BoxImageDataset and its item lists."""
import os

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from datasets.boxes import BoxImageDataset, box_mask, collate_boxes, pad_size
from datasets.coco import coco_box_items
from datasets.constants import MEAN_BGR
from datasets.io import ImageFrame
from datasets.voc import voc_box_items
from tests.conftest import BENCH60, ELEPHANT60, PERSON_WITH_PARTS, TOOTHBRUSH60, TRUCK60, voc_xml, write, write_coco
from utils.parseCOCO import parse_coco


@pytest.mark.parametrize('height, width, test_size, expected', [
    (300, 500, 512, (512, 512)),
    (512, 513, 512, (512, 640)),
    (600, 100, 512, (640, 512)),
    (480, 640, 640, (640, 640)),
    (641, 300, 640, (768, 640)),
    (320, 240, 320, (384, 384)),  # a test size the generator cannot read pads as the next multiple of 128
    (400, 100, 320, (512, 384)),
])
def test_pad_size(height, width, test_size, expected):
    assert pad_size(height, width, test_size) == expected


def test_box_mask_inclusive_and_clipped():
    mask = box_mask([(1.7, 0.2, 3.9, 2.0), (8, 5, 10, 6)], 6, 10)  # x2 = 10 = width
    expected = np.zeros((6, 10), np.uint8)
    expected[0:3, 1:4] = 1
    expected[5:6, 8:10] = 1
    np.testing.assert_array_equal(mask, expected)
    assert box_mask([], 3, 4).sum() == 0


def test_box_image_dataset_padding_and_masks(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (10, 20, 3)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), image)
    boxes = [(15, 1, 1, 3, 4), (12, 5, 5, 25, 8), (15, 10, 0, 12, 2)]
    dataset = BoxImageDataset([('a', str(tmp_path / 'a.png'), boxes)], test_size=128)
    sample = dataset[0]
    assert sample.image_id == 'a' and (sample.height, sample.width) == (10, 20)
    assert sample.image.shape == (3, 128, 128)
    np.testing.assert_allclose(sample.image[:, :10, :20].numpy(),
                               (image.astype(np.float32) - MEAN_BGR).transpose(2, 0, 1))
    assert (sample.image[:, 10:] == 0).all() and (sample.image[:, :, 20:] == 0).all()
    assert sample.class_ids.tolist() == [15, 12] and sample.class_ids.dtype == torch.long
    masks = sample.box_masks
    assert masks.shape == (2, 128, 128) and masks.dtype == torch.float32
    person = np.zeros((128, 128), np.float32)
    person[1:5, 1:4] = 1
    person[0:3, 10:13] = 1
    dog = np.zeros((128, 128), np.float32)
    dog[5:9, 5:20] = 1  # x2 = 25 lies outside the 20-pixel-wide image
    np.testing.assert_array_equal(masks[0].numpy(), person)
    np.testing.assert_array_equal(masks[1].numpy(), dog)

    batches = list(DataLoader(dataset, batch_size=2, collate_fn=collate_boxes))
    assert len(batches) == 1 and isinstance(batches[0], list) and batches[0][0].image_id == 'a'


def test_voc_box_items(tmp_path):
    write(str(tmp_path / 'Annotations' / '2008_000001.xml'), voc_xml([PERSON_WITH_PARTS, ('dog', (30, 1, 60, 9), [])]))
    items = voc_box_items(str(tmp_path), ['2008_000001'])
    xml = os.path.join(str(tmp_path), 'Annotations', '2008_000001.xml')
    assert items == [('2008_000001', os.path.join(str(tmp_path), 'JPEGImages', '2008_000001.jpg'),
                      [(15, 4, 5, 19, 29), (12, 29, 0, 49, 8)],
                      ImageFrame(40, 50, f'the <size> in its annotation {xml}'))]


def test_coco_box_items(tmp_path):
    write_coco(str(tmp_path))
    parse_coco(str(tmp_path))
    items = coco_box_items(str(tmp_path))
    assert [item.image_id for item in items] == ['000000000001', '000000000042']  # image 2 has only VOC boxes
    assert items[0][1] == os.path.join(str(tmp_path), 'train2017', '000000000001.jpg')
    assert items[0][2] == [(ELEPHANT60, 2.4, 2.7, 2.4 + 22.9, 2.7 + 12.6), (TRUCK60, 5, 4, 12, 10),
                           (ELEPHANT60, 10, 8, 15, 12), (TOOTHBRUSH60, 26.0, 16.0, 30.0, 20.0)]
    assert [box[0] for box in items[1][2]] == [BENCH60, BENCH60]
    assert [item.image_id for item in coco_box_items(str(tmp_path), ids=['000000000042', 2, 1])] == [
        '000000000042', '000000000001']
