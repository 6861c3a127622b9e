"""Beyond VOC: COCO-format datasets with categories neither VOC nor COCO has, as targets (pseudo masks) and
as auxiliary sets (generator training), and VOC's train_aug built from SBD."""
import json
import os

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from pycocotools import mask as mask_utils

import genPseudoMasks
import main as train_backbone
import test as test_backbone
import trainLPG
from datasets.coco_json import annotation_mask
from datasets.synthetic import AUXILIARY_CATEGORIES, TARGET_CATEGORIES, make_custom_data
from datasets.voc import read_split
from models.lpg import LPGNet
from tests.conftest import cli
from utils.engine.checkpoint import save_checkpoint
from utils.make_voc_aug import make_voc_aug
from utils.pseudo_masks.methods import mask_dir

CPU = ['--cuda', 'false', '--workers', 0]


def parse(script, *flags):
    return script.get_args_parser().parse_args([str(flag) for flag in flags])


@pytest.fixture(scope='module')
def custom(tmp_path_factory):
    sets = make_custom_data(str(tmp_path_factory.mktemp('custom')), num_images=8, image_size=64, seed=3)
    return {side: dict(annotations=path, image_dir=images) for side, (path, images) in sets.items()}


def target_flags(custom, out, *extra):
    t = custom['target']
    return ['--dataset', 'custom', '--annotations', t['annotations'], '--image_dir', t['image_dir'],
            '--custom_proposals_dir', out, '--custom_test_size', 128, *extra, *CPU]


def decode(annotation):
    return mask_utils.decode({'size': annotation['segmentation']['size'],
                              'counts': annotation['segmentation']['counts'].encode()}).astype(bool)


def test_pngs_classes_and_rle_json_agree(custom, tmp_path):
    out = genPseudoMasks.main(parse(genPseudoMasks, *target_flags(custom, tmp_path, '--method', 'box')))
    classes = json.load(open(os.path.join(out, 'classes.json')))
    assert classes == {'0': {'id': None, 'name': 'background'}, '1': {'id': 7001, 'name': 'quasar'},
                       '2': {'id': 7002, 'name': 'pulsar'}, '3': {'id': 7003, 'name': 'nebula'}}  # ascending ids
    index_of = {entry['id']: int(index) for index, entry in classes.items()}
    result = json.load(open(os.path.join(out, 'pseudo_masks.json')))
    source = json.load(open(custom['target']['annotations']))
    assert result['categories'] == [{'id': i, 'name': n} for i, n in sorted(TARGET_CATEGORIES)]
    assert [image['id'] for image in result['images']] == [image['id'] for image in source['images']]
    per_image = {}
    for annotation in result['annotations']:
        per_image.setdefault(annotation['image_id'], []).append(annotation)
    assert per_image and len(per_image) == len(source['images'])
    for image in source['images']:
        png = np.asarray(Image.open(os.path.join(out, image['file_name'][:-4] + '.png')))
        assert png.shape == (image['height'], image['width'])
        annotations = per_image[image['id']]
        assert {index_of[a['category_id']] for a in annotations} == set(np.unique(png).tolist()) - {0}
        for annotation in annotations:  # one annotation per class present, its mask exactly the PNG's pixels
            mask = decode(annotation)
            assert np.array_equal(mask, png == index_of[annotation['category_id']])
            assert annotation['area'] == mask.sum()


def touching_boxes_json(tmp_path, custom):
    """One image with two touching boxes of one category."""
    source = json.load(open(custom['target']['annotations']))
    image = source['images'][0]
    # Boxes cover columns x..x+w and rows y..y+h inclusive (the release's rule): columns 4..23 and 24..44.
    boxes = [[4, 10, 19, 29], [24, 10, 20, 29]]
    annotations = [{'id': 11 + k, 'image_id': image['id'], 'category_id': 7002, 'bbox': box, 'area': 600,
                    'iscrowd': 0} for k, box in enumerate(boxes)]
    path = tmp_path / 'touching.json'
    path.write_text(json.dumps({'images': [image], 'annotations': annotations, 'categories': source['categories']}))
    return str(path), boxes


def test_instances_keep_a_crowd_box_marked_as_crowd(custom, tmp_path):
    annotations, _ = touching_boxes_json(tmp_path, custom)
    data = json.load(open(annotations))
    data['annotations'][1]['iscrowd'] = 1
    open(annotations, 'w').write(json.dumps(data))
    out = genPseudoMasks.main(parse(genPseudoMasks, '--dataset', 'custom', '--annotations', annotations, '--image_dir',
                                    custom['target']['image_dir'], '--custom_test_size', 128, '--method', 'box',
                                    '--instances', '--custom_proposals_dir', tmp_path / 'instances', *CPU))
    result = json.load(open(os.path.join(out, 'pseudo_masks.json')))['annotations']
    assert [(a['source_annotation'], a['iscrowd']) for a in result] == [(11, 0), (12, 1)]
    assert decode(result[1]).any()


def test_instances_separate_touching_boxes_of_one_class(custom, tmp_path):
    annotations, boxes = touching_boxes_json(tmp_path, custom)
    t = custom['target']
    flags = ['--dataset', 'custom', '--annotations', annotations, '--image_dir', t['image_dir'],
             '--custom_test_size', 128, *CPU]
    semantic = genPseudoMasks.main(parse(genPseudoMasks, *flags, '--method', 'box', '--custom_proposals_dir',
                                         tmp_path / 'semantic'))
    assert len(json.load(open(os.path.join(semantic, 'pseudo_masks.json')))['annotations']) == 1  # merged
    out = genPseudoMasks.main(parse(genPseudoMasks, *flags, '--method', 'box', '--instances', '--custom_proposals_dir',
                                    tmp_path / 'instances'))
    result = json.load(open(os.path.join(out, 'pseudo_masks.json')))['annotations']
    assert [a['source_annotation'] for a in result] == [11, 12] and {a['category_id'] for a in result} == {7002}
    first, second = decode(result[0]), decode(result[1])
    assert not (first & second).any()
    assert first[10:40, 4:24].all() and not first[:, 24:].any()
    assert second[10:40, 24:45].all() and not second[:, :24].any()

    # The generator, run on each box alone: one mask per box, each inside its own box.
    torch.manual_seed(0)
    lpg_path = save_checkpoint(tmp_path / 'LPG_Round1.pth', **LPGNet(in_channels=4).state_dict())
    out = genPseudoMasks.main(parse(genPseudoMasks, *flags, '--model_path_test', lpg_path, '--instances',
                                    '--custom_proposals_dir', tmp_path / 'lpg'))
    result = json.load(open(os.path.join(out, 'pseudo_masks.json')))['annotations']
    assert len(result) == 2
    for annotation, (x, y, w, h) in zip(result, boxes):
        mask = decode(annotation)
        outside = mask.copy()
        outside[y:y + h + 1, x:x + w + 1] = False
        assert not outside.any()


def test_an_excluded_category_never_reaches_the_generator_targets(custom, tmp_path):
    a = custom['aux']
    args = parse(trainLPG, '--dataset', 'custom', '--annotations', a['annotations'], '--image_dir', a['image_dir'],
                 '--exclude_categories', 'sprocket', '--model_save_path', tmp_path, '--crop_size', 128)
    args = trainLPG.resolved_source(args)
    dataset = trainLPG.build_dataset(args)
    labels = json.load(open(os.path.join(args.labels_dir, 'boxes.json')))
    kept = [(i, n) for i, n in sorted(AUXILIARY_CATEGORIES) if n != 'sprocket']
    assert [labels['classes'][str(k)]['name'] for k in range(1, 4)] == [n for _, n in kept]
    assert {class_id for _, class_id in dataset.samples} <= {1, 2, 3}
    source = json.load(open(a['annotations']))
    sprocket = [ann for ann in source['annotations'] if ann['category_id'] == 502]
    assert sprocket, 'the generated data must contain the excluded category'
    images = {image['id']: image for image in source['images']}
    for annotation in sprocket:
        image = images[annotation['image_id']]
        name = image['file_name'][:-4]
        mask_path = os.path.join(args.labels_dir, 'seg', f'{name}.png')
        if not os.path.exists(mask_path):
            continue  # an image with only the excluded category gets no labels
        label = np.asarray(Image.open(mask_path))
        pixels = annotation_mask(annotation['segmentation'], image['height'], image['width']).astype(bool)
        others = [ann for ann in source['annotations'] if ann['image_id'] == image['id'] and ann['category_id'] != 502]
        for other in others:
            pixels &= ~annotation_mask(other['segmentation'], image['height'], image['width']).astype(bool)
        assert (label[pixels] == 0).all()
        assert all(box[4] != 0 for box in labels['boxes'].get(name, []))
    for index in range(len(dataset)):
        _, box_mask, target, class_id = dataset[index]
        assert 1 <= class_id <= 3


def test_the_custom_loop_trains_a_backbone_and_generates_round_2(custom, tmp_path):
    t = custom['target']
    source = ['--dataset', 'custom', '--annotations', t['annotations'], '--image_dir', t['image_dir']]
    masks = genPseudoMasks.main(parse(genPseudoMasks, *target_flags(custom, tmp_path / 'p', '--method', 'box')))
    final = train_backbone.main(parse(train_backbone, *source, '--label_path_name', masks, '--save_path',
                                      tmp_path / 'b', '--from_scratch', '--num_iterations', 1, '--batch_size', 2,
                                      '--crop_size', 33, *CPU))
    scores = test_backbone.main(parse(test_backbone, '--type', 'masks', *source, '--pred_dir', masks, *CPU))
    assert 0 < scores['methods']['box']['Mean IoU'] <= 1
    assert list(scores['methods']['box']['Class IoU']) == ['background', 'quasar', 'pulsar', 'nebula']
    torch.manual_seed(0)
    lpg2 = save_checkpoint(tmp_path / 'LPG_Round2.pth', **LPGNet(in_channels=5).state_dict())
    out = genPseudoMasks.main(parse(genPseudoMasks, *target_flags(custom, tmp_path / 'p', '--round', 2,
                                                                  '--model_path_test', lpg2,
                                                                  '--init_custom_model_path', final)))
    assert len([n for n in os.listdir(out) if n.endswith('.png')]) == 8


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize('content, expected', [
    ({'images': [], 'annotations': []}, '"categories"'),
    ({'annotations': [], 'categories': []}, '"images"'),
])
def test_a_json_without_its_lists_is_named(custom, tmp_path, monkeypatch, content, expected):
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps(content))
    t = custom['target']
    status, message = cli(genPseudoMasks, '--dataset', 'custom', '--annotations', path, '--image_dir', t['image_dir'],
                          '--custom_proposals_dir', tmp_path / 'out', '--method', 'box', *CPU, monkeypatch=monkeypatch)
    assert status == 1 and str(path) in message and expected in message


def test_zero_area_boxes_and_missing_images_fail_alone(custom, tmp_path, monkeypatch):
    source = json.load(open(custom['target']['annotations']))
    source['annotations'][0]['bbox'][2] = 0  # zero width
    first = source['annotations'][0]['image_id']
    missing = next(image for image in source['images'] if image['id'] != first)
    missing['file_name'] = 'not_there.jpg'
    path = tmp_path / 'faulty.json'
    path.write_text(json.dumps(source))
    t = custom['target']
    status, message = cli(genPseudoMasks, '--dataset', 'custom', '--annotations', path, '--image_dir', t['image_dir'],
                          '--custom_proposals_dir', tmp_path / 'out', '--method', 'box', *CPU, monkeypatch=monkeypatch)
    assert status == 1 and '2 images failed' in message
    assert f'annotation {source["annotations"][0]["id"]} of image {first} has a box without area' in message
    assert 'not_there.jpg' in message and str(path) in message
    out = mask_dir(str(tmp_path / 'out'), 'box', None, None)
    assert len([n for n in os.listdir(out) if n.endswith('.png')]) == 6  # the others are written


def test_an_image_whose_size_contradicts_the_json_fails_alone(custom, tmp_path, monkeypatch):
    source = json.load(open(custom['target']['annotations']))
    wrong = next(image for image in source['images'] if image['id'] in {a['image_id'] for a in source['annotations']})
    wrong['width'] = 80  # the file is 64 wide: its boxes would be cut, its labels drawn at the wrong size
    path = tmp_path / 'resized.json'
    path.write_text(json.dumps(source))
    t = custom['target']
    status, message = cli(genPseudoMasks, '--dataset', 'custom', '--annotations', path, '--image_dir', t['image_dir'],
                          '--custom_proposals_dir', tmp_path / 'out', '--method', 'box', *CPU, monkeypatch=monkeypatch)
    image = os.path.join(t['image_dir'], wrong['file_name'])
    assert status == 1 and '1 images failed' in message
    assert f'image file {image} is 64x64, but its size in {path} (image {wrong["id"]}) is 80x64' in message
    out = mask_dir(str(tmp_path / 'out'), 'box', None, None)
    assert len([n for n in os.listdir(out) if n.endswith('.png')]) == 7  # the others are written


def test_an_unknown_excluded_category_is_named(custom, tmp_path, monkeypatch):
    a = custom['aux']
    status, message = cli(trainLPG, '--dataset', 'custom', '--round', 1, '--annotations', a['annotations'],
                          '--image_dir', a['image_dir'], '--exclude_categories', 'gizmo,person',
                          '--model_save_path', tmp_path,
                          *CPU, monkeypatch=monkeypatch)
    assert status == 1 and "['person']" in message and a['annotations'] in message and 'gizmo' in message


# ---------------------------------------------------------------------------------------------- SBD -> train_aug
def write_sbd(root, ids, shape=(6, 8)):
    """SBD's layout: cls/ID.mat (struct GTcls with Segmentation), train.txt, val.txt."""
    os.makedirs(root / 'cls')
    for k, image_id in enumerate(dict.fromkeys(ids['sbd_train'] + ids['sbd_val'])):
        segmentation = np.zeros(shape, np.uint8)
        segmentation[1:4, 2:6] = k % 20 + 1
        scipy.io.savemat(root / 'cls' / f'{image_id}.mat', {'GTcls': {
            'Segmentation': segmentation, 'Boundaries': np.zeros((1, 1)), 'CategoriesPresent': np.array([k % 20 + 1])}})
    (root / 'train.txt').write_text(''.join(f'{i}\n' for i in ids['sbd_train']))
    (root / 'val.txt').write_text(''.join(f'{i}\n' for i in ids['sbd_val']))


def test_make_voc_aug_values_and_list_arithmetic(tmp_path, capsys):
    ids = {'sbd_train': ['a1', 'a2', 'v1'], 'sbd_val': ['b1', 'a2'], 'voc_train': ['t1', 'a1'], 'voc_val': ['v1', 'v2']}
    sbd = tmp_path / 'benchmark_RELEASE' / 'dataset'
    write_sbd(sbd, ids)
    voc = tmp_path / 'VOC2012'
    os.makedirs(voc / 'JPEGImages')
    os.makedirs(voc / 'ImageSets' / 'Segmentation')
    (voc / 'ImageSets' / 'Segmentation' / 'train.txt').write_text('t1\na1\n')
    (voc / 'ImageSets' / 'Segmentation' / 'val.txt').write_text('v1\nv2\n')
    os.makedirs(voc / 'SegmentationClass')
    voc_mask = np.full((6, 8), 255, np.uint8)
    voc_mask[2:5, 1:3] = 7
    for image_id in ('t1', 'a1', 'v1', 'v2'):
        Image.fromarray(voc_mask).save(voc / 'SegmentationClass' / f'{image_id}.png')
    result = make_voc_aug(str(tmp_path), str(voc))
    # SBD train + SBD val + VOC train - VOC val: {a1, a2, v1, b1, t1} - {v1, v2}
    assert result == ['a1', 'a2', 'b1', 't1']
    assert read_split(str(voc / 'ImageSets/Segmentation/train_aug.txt')) == result
    assert 'and 4 ids to' in capsys.readouterr().out
    aug = lambda image_id: np.asarray(Image.open(voc / 'SegmentationClassAug' / f'{image_id}.png'))
    expected_a2 = np.zeros((6, 8), np.uint8)
    expected_a2[1:4, 2:6] = 2  # 'a2' is the second SBD file: class 2
    assert np.array_equal(aug('a2'), expected_a2) and Image.open(voc / 'SegmentationClassAug' / 'a2.png').mode == 'P'
    assert np.array_equal(aug('a1'), voc_mask)  # VOC's own mask wins where both exist
    assert np.array_equal(aug('t1'), voc_mask)
    assert make_voc_aug(str(tmp_path), str(voc)) == result  # a rerun on the same inputs skips


def test_sbd_without_its_parts_is_named(tmp_path, monkeypatch):
    from utils import make_voc_aug as tool
    os.makedirs(tmp_path / 'VOC2012' / 'JPEGImages')
    status, message = cli(tool, '--sbd_root', tmp_path / 'sbd', '--voc_root', tmp_path / 'VOC2012',
                          monkeypatch=monkeypatch)
    assert status == 1 and 'cls/' in message and str(tmp_path / 'sbd') in message
    os.makedirs(tmp_path / 'sbd' / 'cls')
    (tmp_path / 'sbd' / 'train.txt').write_text('x\n')
    status, message = cli(tool, '--sbd_root', tmp_path / 'sbd', '--voc_root', tmp_path / 'VOC2012',
                          monkeypatch=monkeypatch)
    assert status == 1 and 'no val.txt' in message
