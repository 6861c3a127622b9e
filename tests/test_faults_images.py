"""The fault suite, bad image and mask files: training checks its images up front and names every bad one;
generation and scoring fail a missing, truncated, empty or mis-sized image (or one out of memory) by name and
finish the others; a mask value that is not a class is refused; large images are generated downscaled."""
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import genPseudoMasks
import main as train_backbone
import test as test_backbone
from datasets.boxes import BoxImage, box_mask, downscaled, restore_size
from datasets.io import save_palette_png
from datasets.voc import read_split, split_file, voc_box_items
from models import DeepLabLargeFOV
from tests.conftest import cli
from tests.faults import CPU, backbone_flags, generation_flags, pngs
from utils.engine import layout
from utils.engine.checkpoint import save_checkpoint
from utils.pseudo_masks import generator as pseudo_mask_generator
from utils.pseudo_masks.methods import mask_dir


# ---------------------------------------------------------------------------------------------- up-front validation
def test_bad_training_data_is_reported_at_once_before_training(data, tmp_path, monkeypatch, capsys):
    ids = read_split(split_file(data['voc'], 'train_aug'))
    os.remove(os.path.join(data['voc'], 'JPEGImages', f'{ids[0]}.jpg'))
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(os.path.join(data['voc'], 'SegmentationClassAug', f'{ids[1]}.png'))
    flags = backbone_flags(data, tmp_path / 'run', '--num_iterations', 1)
    status, message = cli(train_backbone, *flags, monkeypatch=monkeypatch)
    assert status == 1 and '2 of 6 training images are bad' in message
    assert f'{ids[0]}.jpg' in message and f'{ids[1]}.png is 7x5' in message and '--skip_bad' in message
    assert not os.path.exists(layout.last_checkpoint(str(tmp_path / 'run')))
    assert cli(train_backbone, *flags, '--skip_bad', '--overwrite', monkeypatch=monkeypatch)[0] == 0
    assert '--skip_bad: leaving out 2 of 6 training images' in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- batch jobs go on
def test_a_truncated_jpeg_fails_and_the_others_are_written(data, lpg_path, tmp_path, monkeypatch, capsys):
    ids = read_split(split_file(data['voc'], 'train_aug'))
    jpeg = os.path.join(data['voc'], 'JPEGImages', f'{ids[2]}.jpg')
    content = open(jpeg, 'rb').read()
    open(jpeg, 'wb').write(content[:len(content) // 2])
    flags = generation_flags(data, lpg_path, tmp_path / 'out')
    status, message = cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)
    assert status == 1 and f'{ids[2]}: image file {jpeg} is truncated' in message
    out = mask_dir(str(tmp_path / 'out'), 'lpg', 'vgg16', 1)
    assert sorted(pngs(out)) == sorted(f'{i}.png' for i in ids if i != ids[2])
    assert '6 images: 5 written, 0 already done, 1 failed' in capsys.readouterr().out
    open(jpeg, 'wb').write(content)  # repaired: the rerun makes the missing mask only
    assert cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)[0] == 0
    assert len(pngs(out)) == 6 and '6 images, 5 already done' in capsys.readouterr().out


def test_ground_truth_of_another_size_is_never_scored_on_a_crop(data, tmp_path, monkeypatch):
    ids = read_split(split_file(data['voc'], 'val'))
    Image.fromarray(np.zeros((60, 64), np.uint8)).save(os.path.join(data['voc'], 'SegmentationClass', f'{ids[0]}.png'))
    model = tmp_path / 'vgg16_final.pth'
    save_checkpoint(model, **DeepLabLargeFOV(num_classes=21).state_dict())
    status, message = cli(test_backbone, '--type', 'test', '--root_path', data['voc'], '--model_path', model,
                          '--test_size', 65, *CPU, monkeypatch=monkeypatch)
    # Read in the frame of its ground truth, the image contradicts it: no logits, and the message says why.
    assert status == 1 and f'{ids[0]}: no logits: image file' in message
    assert f'{ids[0]}.jpg is 64x64, but its label' in message and f'{ids[0]}.png is 64x60' in message
    scores = load_json(layout.scores_file(layout.eval_dir(str(model), 'val'), 'test'))
    assert scores['num_scored'] == 2 and list(scores['failed']) == [ids[0]]


def test_a_zero_byte_image_is_a_per_image_failure_everywhere(data, lpg_path, tmp_path, monkeypatch, capsys):
    """Generation, training's up-front check and test.py each name the empty file and go on with the others."""
    train_ids = read_split(split_file(data['voc'], 'train_aug'))
    val_ids = read_split(split_file(data['voc'], 'val'))
    for image_id in (train_ids[1], val_ids[0]):
        open(os.path.join(data['voc'], 'JPEGImages', f'{image_id}.jpg'), 'wb').close()
    empty = os.path.join(data['voc'], 'JPEGImages', f'{train_ids[1]}.jpg')

    status, message = cli(genPseudoMasks, *generation_flags(data, lpg_path, tmp_path / 'out'), monkeypatch=monkeypatch)
    assert status == 1 and f'{train_ids[1]}: image file {empty} is empty (0 bytes)' in message
    assert '6 images: 5 written, 0 already done, 1 failed' in capsys.readouterr().out

    status, message = cli(train_backbone, *backbone_flags(data, tmp_path / 'run', '--num_iterations', 1),
                          monkeypatch=monkeypatch)
    assert status == 1 and '1 of 6 training images are bad' in message and 'is empty (0 bytes)' in message
    assert 'Traceback' not in message

    model = tmp_path / 'vgg16_final.pth'
    save_checkpoint(model, **DeepLabLargeFOV(num_classes=21).state_dict())
    status, message = cli(test_backbone, '--type', 'test', '--root_path', data['voc'], '--model_path', model,
                          '--test_size', 65, *CPU, monkeypatch=monkeypatch)
    assert status == 1 and 'is empty (0 bytes)' in message
    scores = load_json(layout.scores_file(layout.eval_dir(str(model), 'val'), 'test'))
    assert scores['num_scored'] == len(val_ids) - 1 and list(scores['failed']) == [val_ids[0]]


def load_json(path):
    import json
    with open(path) as handle:
        return json.load(handle)


def test_a_mask_value_beyond_the_classes_is_not_scored_as_a_class(data, tmp_path, monkeypatch):
    """A VOC mask holding 37 (21 classes): the confusion matrix would count it in another cell, so scoring stops
    naming the file and the value."""
    pred = tmp_path / 'masks'
    shutil.copytree(os.path.join(data['voc'], 'SegmentationClassAug'), pred)
    first = read_split(split_file(data['voc'], 'train_aug'))[0]
    mask = np.asarray(Image.open(pred / f'{first}.png')).copy()
    mask[0, :3] = 37
    save_palette_png(str(pred / f'{first}.png'), mask)
    status, message = cli(test_backbone, '--type', 'masks', '--root_path', data['voc'], '--pred_dir', pred,
                          '--split', 'train_aug', '--save_path', tmp_path, *CPU, monkeypatch=monkeypatch)
    assert status == 1 and message.startswith(f'error: {pred / first}.png: values [37] are not classes')
    assert not os.path.exists(layout.mask_scores_file(str(tmp_path), str(pred)))


# ---------------------------------------------------------------------------------------------- large images
def test_max_side_generates_a_large_image_downscaled_and_returns_its_masks_at_its_size(data, lpg_path, tmp_path,
                                                                                        monkeypatch):
    image = np.zeros((300, 200, 3), np.float32)
    entries = [[(10, 20, 109, 59)], [(150, 200, 199, 299), (0, 0, 9, 9)]]
    small, small_entries = downscaled(image, entries, 150)
    assert small.shape[:2] == (150, 100) and small_entries[0] == [(5.0, 10.0, 54.5, 29.5)]
    sample = BoxImage(torch.zeros(3, 150, 100), torch.zeros(2, 150, 100), torch.tensor([1, 2]), small_entries, 150,
                      100, 'big', 1, full_size=(300, 200), full_entry_boxes=entries)
    everywhere = torch.ones(2, 150, 100, dtype=torch.bool)
    foreground, _, boxes = restore_size(sample, everywhere)
    assert boxes == entries and foreground.shape == (2, 300, 200)
    for k in range(2):  # all of a downscaled entry is all of its boxes at full size, and nothing outside them
        assert torch.equal(foreground[k], torch.from_numpy(box_mask(entries[k], 300, 200)).bool())
    assert downscaled(image, entries, 300)[0] is image  # not longer than max_side: as it is

    flags = generation_flags(data, lpg_path, tmp_path / 'small', '--max_side', 32)
    assert cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)[0] == 0
    out = mask_dir(str(tmp_path / 'small'), 'lpg', 'vgg16', 1)
    ids = read_split(split_file(data['voc'], 'train_aug'))
    for image_id, image_path, boxes, _ in voc_box_items(data['voc'], ids):
        mask = pngs(out)[f'{image_id}.png']
        assert mask.shape == np.asarray(Image.open(image_path)).shape[:2]
        for class_id in set(np.unique(mask).tolist()) - {0}:
            inside = box_mask([box[1:] for box in boxes if box[0] == class_id], *mask.shape).astype(bool)
            assert not (mask == class_id)[~inside].any()
    same = generation_flags(data, lpg_path, tmp_path / 'same', '--max_side', 64)  # the images are 64 pixels
    plain = generation_flags(data, lpg_path, tmp_path / 'plain')
    assert cli(genPseudoMasks, *same, monkeypatch=monkeypatch)[0] == 0
    assert cli(genPseudoMasks, *plain, monkeypatch=monkeypatch)[0] == 0
    first, second = (pngs(mask_dir(str(tmp_path / name), 'lpg', 'vgg16', 1))
                     for name in ('same', 'plain'))
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize('method', ['grabcut', 'crf'])
def test_max_side_downscales_the_baselines_too_and_returns_masks_at_the_image_size(method, data, tmp_path,
                                                                                     monkeypatch):
    """The demo's images are 64 pixels: --max_side 32 reads them at half size, --max_side 64 as they are."""
    def masks(name, *extra):
        flags = ['--dataset', 'voc', '--method', method, '--voc_root_dir', data['voc'], '--voc_proposals_dir',
                 tmp_path / name, '--n_jobs', 1, *extra, *CPU]
        assert cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)[0] == 0
        return pngs(mask_dir(str(tmp_path / name), method, 'vgg16', 1))
    plain, same, small = masks('plain'), masks('same', '--max_side', 64), masks('small', '--max_side', 32)
    assert plain.keys() == same.keys() == small.keys()
    assert all(np.array_equal(plain[k], same[k]) for k in plain)
    assert not all(np.array_equal(plain[k], small[k]) for k in plain)  # read at half size: other masks
    ids = read_split(split_file(data['voc'], 'train_aug'))
    for image_id, image_path, boxes, _ in voc_box_items(data['voc'], ids):
        mask = small[f'{image_id}.png']
        assert mask.shape == np.asarray(Image.open(image_path)).shape[:2]
        for class_id in set(np.unique(mask).tolist()) - {0}:
            inside = box_mask([box[1:] for box in boxes if box[0] == class_id], *mask.shape).astype(bool)
            assert not (mask == class_id)[~inside].any()


def test_out_of_memory_on_one_image_fails_that_image_only(data, lpg_path, tmp_path, monkeypatch, capsys):
    ids = read_split(split_file(data['voc'], 'train_aug'))
    real = pseudo_mask_generator.generate_foregrounds

    def short_of_memory(lpg, samples, *args, **kwargs):
        if any(sample.image_id == ids[1] for sample in samples):
            raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
        return real(lpg, samples, *args, **kwargs)
    monkeypatch.setattr(pseudo_mask_generator, 'generate_foregrounds', short_of_memory)
    status, message = cli(genPseudoMasks, *generation_flags(data, lpg_path, tmp_path / 'out', '--image_batch_size', 2),
                          monkeypatch=monkeypatch)
    assert status == 1 and f'{ids[1]}: out of memory at 64x64 pixels: pass --max_side' in message
    assert sorted(pngs(mask_dir(str(tmp_path / 'out'), 'lpg', 'vgg16', 1))) == \
        sorted(f'{i}.png' for i in ids if i != ids[1])
    assert '6 images: 5 written, 0 already done, 1 failed' in capsys.readouterr().out
