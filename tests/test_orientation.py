"""Images are decoded in the pixel frame their annotation declares: an EXIF orientation tag (a photo taken with
the camera turned) is ignored unless only the turned size matches the declared one, and a size that matches
neither is a per-image failure naming the file and both sizes."""
import os
import xml.etree.ElementTree as ElementTree

import cv2
import numpy as np
import pytest
from PIL import Image

import genPseudoMasks
from datasets import segmentation
from datasets.io import ImageFrame, decode_image, read_label
from datasets.synthetic import make_demo_data
from datasets.validate import image_problems
from datasets.voc import read_split, split_file
from models import LPGNet
from tests.conftest import cli
from utils.engine.checkpoint import save_checkpoint
from utils.engine.errors import InputError
from utils.pseudo_masks.methods import mask_dir

CPU = ['--cuda', 'false', '--workers', 0, '--amp', 'off']
STORED = (40, 60)  # (height, width) of the pixels as stored in the file


def tagged_jpeg(path, orientation, size=STORED, seed=0):
    """A JPEG of random pixels, stored at size, whose EXIF orientation tag is `orientation`."""
    pixels = (np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=95)
    return str(path)


@pytest.mark.parametrize('orientation', range(1, 9))
def test_the_tag_is_ignored_unless_only_the_turned_size_matches(tmp_path, orientation):
    path = tagged_jpeg(tmp_path / 'photo.jpg', orientation)
    stored = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    shown = cv2.imread(path)  # what a viewer shows: OpenCV applies the tag
    for frame in (None, ImageFrame(*STORED, 'its annotation')):
        decoded = decode_image(path, frame)
        assert decoded.orientation == orientation and np.array_equal(decoded.image, stored.astype(np.float32))
    turned = ImageFrame(STORED[1], STORED[0], 'the <size> in its annotation a.xml')
    if orientation >= 5:  # the tags that swap width and height: the image is turned as a viewer turns it
        assert shown.shape[:2] == STORED[::-1]
        assert np.array_equal(decode_image(path, turned).image, shown.astype(np.float32))
    else:
        with pytest.raises(InputError, match='is 60x40, but the <size> in its annotation a.xml is 40x60'):
            decode_image(path, turned)


@pytest.mark.parametrize('orientation', (1, 6))
def test_a_size_that_matches_neither_names_the_file_and_both_sizes(tmp_path, orientation):
    path = tagged_jpeg(tmp_path / 'photo.jpg', orientation)
    with pytest.raises(InputError) as error:
        decode_image(path, ImageFrame(50, 50, 'its label l.png'))
    message = str(error.value)
    assert path in message and 'is 60x40' in message and 'its label l.png is 50x50' in message
    assert ('40x60 turned by its EXIF orientation tag 6' in message) == (orientation == 6)


def test_training_and_test_read_an_image_in_the_frame_of_its_label(tmp_path):
    image = tagged_jpeg(tmp_path / 'photo.jpg', 6)
    shown = cv2.imread(image).astype(np.float32)
    for name, size in (('stored', STORED), ('turned', STORED[::-1]), ('neither', (50, 50))):
        Image.fromarray(np.zeros(size, np.uint8)).save(tmp_path / f'{name}.png')
    dataset = segmentation.SegmentationDataset([(name, image, str(tmp_path / f'{name}.png'))
                                                for name in ('stored', 'turned')])
    assert [tuple(dataset[k][0].shape[1:]) for k in range(2)] == [STORED, STORED[::-1]]
    assert image_problems(image, str(tmp_path / 'turned.png')) == []
    assert 'is 50x50' in image_problems(image, str(tmp_path / 'neither.png'))[0]
    test_images = segmentation.TestImageDataset([('turned', image, str(tmp_path / 'turned.png')), ('unlabelled', image),
                                    ('neither', image, str(tmp_path / 'neither.png'))])
    turned, unlabelled, neither = (test_images[k] for k in range(3))
    assert turned.image_size == STORED[::-1] and turned.orientation == 6
    assert np.allclose(turned.image[:, 3, 5].numpy() + [104.008, 116.669, 122.675], shown[3, 5])
    assert unlabelled.image_size == STORED and 'is 50x50' in neither.error


def set_xml_size(xml_path, height, width):
    tree = ElementTree.parse(xml_path)
    tree.find('size/width').text, tree.find('size/height').text = str(width), str(height)
    tree.write(xml_path)


@pytest.mark.filterwarnings('ignore:.*zero-size box:UserWarning')  # the boxes of the image made 30 pixels wide
def test_generation_decodes_in_the_frame_of_the_xml_and_counts_the_tags(tmp_path, monkeypatch, capsys):
    _, voc = make_demo_data(str(tmp_path / 'data'), num_coco=4, num_voc_train=4, num_voc_val=1, image_size=64, seed=2)
    ids = read_split(split_file(voc, 'train_aug'))
    # ids[0]: tagged, its XML gives the stored size; ids[1]: tagged, its XML gives the turned size; ids[2]: its XML
    # gives a size that matches neither (and no tag); ids[3] as generated.
    for image_id, orientation, declared in ((ids[0], 6, STORED), (ids[1], 8, STORED[::-1]), (ids[2], 1, (50, 30))):
        tagged_jpeg(os.path.join(voc, 'JPEGImages', f'{image_id}.jpg'), orientation)
        set_xml_size(os.path.join(voc, 'Annotations', f'{image_id}.xml'), *declared)
    lpg_path = save_checkpoint(tmp_path / 'LPG_Round1.pth', **LPGNet(in_channels=4).state_dict())
    flags = ['--dataset', 'voc', '--round', 1, '--model_path_test', lpg_path, '--voc_root_dir', voc,
             '--voc_proposals_dir', tmp_path / 'out', '--voc_test_size', 128, *CPU]
    for method in ('lpg', 'box'):
        status, message = cli(genPseudoMasks, *flags, '--method', method, monkeypatch=monkeypatch)
        said = capsys.readouterr().out
        jpeg = os.path.join(voc, 'JPEGImages', f'{ids[2]}.jpg')
        assert status == 1 and f'{ids[2]}: image file {jpeg} is 60x40, but the <size> in its annotation' in message
        assert 'is 30x50' in message and '4 images: 3 written, 0 already done, 1 failed' in said
        assert '2 of the images written carry an EXIF orientation tag' in said
        out = mask_dir(str(tmp_path / 'out'), method, 'vgg16', 1)
        shapes = {name: read_label(os.path.join(out, f'{name}.png')).shape for name in (ids[0], ids[1], ids[3])}
        assert shapes == {ids[0]: STORED, ids[1]: STORED[::-1], ids[3]: (64, 64)}
        assert not os.path.exists(os.path.join(out, f'{ids[2]}.png'))


def test_training_counts_the_tagged_images_in_its_data_check(tmp_path, monkeypatch, capsys):
    import main as train_backbone
    _, voc = make_demo_data(str(tmp_path / 'data'), num_coco=4, num_voc_train=4, num_voc_val=1, image_size=64, seed=2)
    ids = read_split(split_file(voc, 'train_aug'))
    path = os.path.join(voc, 'JPEGImages', f'{ids[0]}.jpg')
    pixels = cv2.imread(path)[:, :, ::-1]
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(path, exif=exif.tobytes())  # square: read in its stored frame, as its label's
    status, _ = cli(train_backbone, '--root_path', voc, '--label_path_name', 'SegmentationClassAug', '--save_path',
                    tmp_path / 'run', '--from_scratch', '--batch_size', 2, '--crop_size', 33, '--num_iterations', 1,
                    *CPU, monkeypatch=monkeypatch)
    assert status == 0
    assert '1 of the 4 training images carry an EXIF orientation tag' in capsys.readouterr().out
