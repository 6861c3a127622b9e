"""VOC XML boxes, paths and split lists, image/label IO and the segmentation dataset."""
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from datasets.coco import coco_items
from datasets.constants import IGNORE_LABEL, MEAN_BGR, VOC_CLASS_TO_ID, VOC_CLASSES, VOC_PALETTE
from datasets.io import read_image_bgr, read_label, save_palette_png, to_tensor_image
from datasets.segmentation import SegmentationDataset
from datasets.transforms import ScalePadCropFlip, nearest_centres
from datasets.voc import parse_voc_xml, read_split, resolve_voc_root, split_file, voc_items
from tests.conftest import PERSON_WITH_PARTS, voc_xml, write


def test_class_table():
    assert len(VOC_CLASSES) == 21 and VOC_CLASS_TO_ID['person'] == 15 and VOC_CLASS_TO_ID['tvmonitor'] == 20
    assert VOC_PALETTE[3:6] == [128, 0, 0] and VOC_PALETTE[255 * 3:] == [224, 224, 192] and len(VOC_PALETTE) == 768


def test_parse_voc_xml_ignores_parts_and_clips(tmp_path):
    path = write(str(tmp_path / 'a.xml'), voc_xml([PERSON_WITH_PARTS, ('dog', (30, 0, 60, 45), [])]))
    boxes = parse_voc_xml(path)
    # 1-based -> 0-based; the dog box runs past the 50x40 image and is clipped to (49, 39)
    assert boxes == [(15, 4, 5, 19, 29), (12, 29, 0, 49, 39)]
    # a given image size takes precedence over <size>
    assert parse_voc_xml(path, width=40, height=30) == [(15, 4, 5, 19, 29), (12, 29, 0, 39, 29)]


def test_parse_voc_xml_zero_size_box_warns_and_is_skipped(tmp_path):
    path = write(str(tmp_path / 'z.xml'),
                 voc_xml([('cat', (10, 10, 10, 20), []), ('bus', (60, 5, 70, 9), []), ('cow', (2, 3, 9, 8), [])]))
    with pytest.warns(UserWarning, match='z.xml') as record:
        boxes = parse_voc_xml(path)
    assert boxes == [(10, 1, 2, 8, 7)]
    assert len(record) == 2  # the zero-width cat and the bus lying entirely right of the image


@pytest.mark.parametrize('objects, problem', [
    ([('person', None, [])], 'no <bndbox>'),
    ([('persons', (1, 1, 5, 5), [])], "unknown class name 'persons'"),
])
def test_parse_voc_xml_bad_objects_name_file_and_object(tmp_path, objects, problem):
    path = write(str(tmp_path / 'bad.xml'), voc_xml([('car', (1, 1, 5, 5), [])] + objects))
    with pytest.raises(ValueError, match=problem) as error:
        parse_voc_xml(path)
    assert path in str(error.value) and 'object 1' in str(error.value)


def test_parse_voc_xml_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.xml'):
        parse_voc_xml(str(tmp_path / 'missing.xml'))
    path = write(str(tmp_path / 'broken.xml'), '<annotation><object>')
    with pytest.raises(ValueError, match='broken.xml'):
        parse_voc_xml(path)


def test_resolve_voc_root_layouts(tmp_path):
    for layout in ('a', 'b/VOC2012', 'c/VOCdevkit/VOC2012'):
        os.makedirs(tmp_path / layout / 'JPEGImages')
    assert resolve_voc_root(str(tmp_path / 'a')) == str(tmp_path / 'a')
    assert resolve_voc_root(str(tmp_path / 'b')) == os.path.join(str(tmp_path / 'b'), 'VOC2012')
    assert resolve_voc_root(str(tmp_path / 'c')) == os.path.join(str(tmp_path / 'c'), 'VOCdevkit', 'VOC2012')
    with pytest.raises(FileNotFoundError, match='JPEGImages'):
        resolve_voc_root(str(tmp_path))


def test_split_lists(tmp_path):
    assert split_file('/voc', 'val') == os.path.join('/voc', 'ImageSets', 'Segmentation', 'val.txt')
    assert split_file('/voc', 'val', '/lists/train_aug.txt') == '/lists/train_aug.txt'
    write(str(tmp_path / 'ImageSets' / 'Segmentation' / 'train.txt'), '2007_000032\n\n 2007_000039 \n')
    assert read_split(split_file(str(tmp_path), 'train')) == ['2007_000032', '2007_000039']
    with pytest.raises(FileNotFoundError, match='val.txt'):
        read_split(split_file(str(tmp_path), 'val'))


def test_io_round_trip_and_errors(tmp_path):
    label = np.array([[0, 1, 20], [255, 15, 0]], np.uint8)
    save_palette_png(str(tmp_path / 'sub' / 'l.png'), label)
    with Image.open(tmp_path / 'sub' / 'l.png') as image:
        assert image.mode == 'P' and image.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
    np.testing.assert_array_equal(read_label(str(tmp_path / 'sub' / 'l.png')), label)
    assert os.listdir(tmp_path / 'sub') == ['l.png']

    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(tmp_path / 'rgb.png')
    with pytest.raises(ValueError, match='rgb.png'):
        read_label(str(tmp_path / 'rgb.png'))
    with pytest.raises(FileNotFoundError, match='nope.png'):
        read_label(str(tmp_path / 'nope.png'))
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        read_image_bgr(str(tmp_path / 'nope.jpg'))
    write(str(tmp_path / 'junk.jpg'), 'not an image')
    with pytest.raises(ValueError, match='junk.jpg'):
        read_image_bgr(str(tmp_path / 'junk.jpg'))

    image = np.random.default_rng(0).integers(0, 256, (4, 5, 3)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'i.png'), image)
    read = read_image_bgr(str(tmp_path / 'i.png'))
    assert read.dtype == np.float32 and read.shape == (4, 5, 3)
    np.testing.assert_array_equal(read, image)
    tensor = to_tensor_image(read)
    assert tensor.shape == (3, 4, 5)
    np.testing.assert_allclose(tensor[:, 1, 2].numpy(), image[1, 2].astype(np.float32) - MEAN_BGR)


def make_pair(tmp_path, name, height=24, width=30):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
    label = rng.integers(0, 21, (height, width)).astype(np.uint8)
    label[0] = IGNORE_LABEL
    cv2.imwrite(str(tmp_path / f'{name}.png'), image)
    save_palette_png(str(tmp_path / 'labels' / f'{name}.png'), label)
    return (name, str(tmp_path / f'{name}.png'), str(tmp_path / 'labels' / f'{name}.png')), image, label


def test_segmentation_dataset_plain_and_augmented(tmp_path):
    item, image, label = make_pair(tmp_path, 'a')
    dataset = SegmentationDataset([item])
    tensor, target, image_id = dataset[0]
    assert image_id == 'a' and tensor.shape == (3, 24, 30) and target.dtype == torch.long
    np.testing.assert_allclose(tensor.numpy(), (image.astype(np.float32) - MEAN_BGR).transpose(2, 0, 1))
    np.testing.assert_array_equal(target.numpy(), label)

    augment = ScalePadCropFlip(40, nearest_centres, scales=(1.0,), flip=False, rng=np.random.default_rng(0))
    tensor, target, _ = SegmentationDataset([item], augment)[0]
    assert tensor.shape == (3, 40, 40) and target.shape == (40, 40)
    np.testing.assert_array_equal(target[:24, :30].numpy(), label)
    assert (target[24:] == IGNORE_LABEL).all() and (target[:, 30:] == IGNORE_LABEL).all()
    assert (tensor[:, 24:] == 0).all()  # image padded with the mean


def test_segmentation_dataset_size_mismatch(tmp_path):
    item, _, _ = make_pair(tmp_path, 'a')
    save_palette_png(item[2], np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match='a.png'):
        SegmentationDataset([item])[0]


def test_item_paths(tmp_path):
    os.makedirs(tmp_path / 'SegmentationClassAug')
    items = voc_items(str(tmp_path), ['2007_000032'], 'SegmentationClassAug')
    assert items == [('2007_000032', os.path.join(str(tmp_path), 'JPEGImages', '2007_000032.jpg'),
                      os.path.join(str(tmp_path), 'SegmentationClassAug', '2007_000032.png'))]
    pseudo = tmp_path / 'out' / 'vgg16_Round1'
    os.makedirs(pseudo)
    assert voc_items('/elsewhere', ['x'], str(pseudo))[0][2] == os.path.join(str(pseudo), 'x.png')
    with pytest.raises(FileNotFoundError, match='SegmentationClass'):
        voc_items(str(tmp_path), ['x'], 'SegmentationClass')
    assert coco_items(str(tmp_path), [9, '25'], str(pseudo)) == [
        ('000000000009', os.path.join(str(tmp_path), 'train2017', '000000000009.jpg'),
         os.path.join(str(pseudo), '000000000009.png')),
        ('000000000025', os.path.join(str(tmp_path), 'train2017', '000000000025.jpg'),
         os.path.join(str(pseudo), '000000000025.png'))]
