"""Results a researcher can compare: the pseudo-mask baselines, the overlap rules, the comparison report,
figures and training curves, the evaluation-server predictions and test-time augmentation."""
import csv
import importlib.util
import json
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import genPseudoMasks
import main as train_backbone
import test as test_backbone
from datasets.constants import VOC_CLASSES
from datasets.io import read_image_bgr, read_label
from datasets.synthetic import make_voc_like
from datasets.voc import read_split, split_file, voc_box_items
from models import DeepLabLargeFOV
from utils.engine import layout
from utils.engine.checkpoint import save_checkpoint
from utils.engine.errors import InputError
from utils.engine.loss_curve import training_curve
from utils.evaluation.backbone_eval import one_class_everywhere
from utils.evaluation.logits import augmented_logits
from utils.evaluation.metric import scores
from utils.evaluation.visualize import comparison_grid, overlay
from utils.pseudo_masks import compose_entries, covering_box_area, grabcut_foreground

CPU = ['--cuda', 'false', '--workers', 0]


def parse(script, *flags):
    return script.get_args_parser().parse_args([str(flag) for flag in flags])


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory):
    """Small VOC-format data whose objects fill only part of their boxes, with a test split without labels."""
    root = make_voc_like(str(tmp_path_factory.mktemp('voc')), num_train=10, num_val=3, image_size=96, seed=7)
    val = read_split(split_file(root, 'val'))
    with open(os.path.join(root, 'ImageSets', 'Segmentation', 'test.txt'), 'w') as handle:
        handle.write(''.join(f'{i}\n' for i in val))
    return root


@pytest.fixture(scope='module')
def baselines(voc_root, tmp_path_factory):
    """The three baselines' masks of the training images: {method: folder}."""
    out = tmp_path_factory.mktemp('baselines')
    return {method: genPseudoMasks.main(parse(genPseudoMasks, '--dataset', 'voc', '--method', method, '--voc_root_dir',
                                              voc_root, '--voc_proposals_dir', out, '--n_jobs', 1, *CPU))
            for method in ('box', 'grabcut', 'crf')}


def labels(folder, ids):
    return [read_label(os.path.join(folder, f'{i}.png')) for i in ids]


def test_box_baseline_fills_boxes_smaller_over_larger(voc_root, baselines):
    for image_id, image_path, boxes, _ in voc_box_items(voc_root, read_split(split_file(voc_root, 'train_aug'))):
        height, width = read_image_bgr(image_path).shape[:2]
        expected = np.zeros((height, width), np.uint8)
        for class_id, x1, y1, x2, y2 in sorted(boxes, key=lambda b: -(b[3] - b[1] + 1) * (b[4] - b[2] + 1)):
            expected[y1:y2 + 1, x1:x2 + 1] = class_id  # larger boxes first, smaller ones painted over them
        np.testing.assert_array_equal(read_label(os.path.join(baselines['box'], f'{image_id}.png')), expected)


def test_grabcut_and_crf_stay_inside_their_boxes_and_beat_filled_boxes(voc_root, baselines):
    ids = read_split(split_file(voc_root, 'train_aug'))
    truth = labels(os.path.join(voc_root, 'SegmentationClassAug'), ids)
    box_miou = scores(truth, labels(baselines['box'], ids), 21)['Mean IoU']
    for method in ('grabcut', 'crf'):
        predicted = labels(baselines[method], ids)
        for (image_id, _, boxes, _), label in zip(voc_box_items(voc_root, ids), predicted):
            inside = np.zeros(label.shape, bool)
            for _, x1, y1, x2, y2 in boxes:
                inside[y1:y2 + 1, x1:x2 + 1] = True
            assert not label[~inside].any(), f'{method} labels {image_id} outside its boxes'
        assert scores(truth, predicted, 21)['Mean IoU'] > box_miou + 0.1, method


def test_grabcut_masks_do_not_depend_on_opencvs_random_state(voc_root):
    """GrabCut's k-means draws from OpenCV's per-thread RNG; the masks must not depend on what ran before them
    (in a joblib worker: which images it happened to process)."""
    differing = 0
    for _, image_path, boxes, _ in voc_box_items(voc_root, read_split(split_file(voc_root, 'train_aug'))):
        image, entries = read_image_bgr(image_path), [[box[1:]] for box in boxes]
        results = []
        for state in (1, 12345):
            cv2.setRNGSeed(state)
            results.append(grabcut_foreground(image, entries))
        differing += int((results[0] != results[1]).sum())
    assert differing == 0


def test_overlap_rules_differ_only_where_boxes_overlap():
    generator = torch.Generator().manual_seed(0)
    # Only the boxes of the first two entries overlap; the second entry's box there is the smaller one.
    entry_boxes = [[(0, 0, 24, 24)], [(12, 10, 30, 28), (0, 30, 5, 39)], [(25, 0, 39, 8)]]
    areas = covering_box_area(entry_boxes, 40, 40)
    foreground = torch.isfinite(areas) & (torch.rand(3, 40, 40, generator=generator) > 0.3)
    confidence = torch.rand(3, 40, 40, generator=generator)
    results = {rule: compose_entries(foreground, [5, 9, 2], rule, confidence, entry_boxes)
               for rule in ('first', 'confidence', 'smaller')}
    claimed = foreground.sum(0)
    for a in results.values():
        for b in results.values():
            assert (a[claimed < 2] == b[claimed < 2]).all()  # one or no claimant: every rule agrees
    contested = claimed >= 2
    assert contested.any() and not torch.equal(results['first'], results['confidence'])
    assert (results['first'][contested] == 5).all()  # the first class, as the release
    best = torch.where(foreground, confidence, torch.tensor(-1.0)).argmax(0)
    assert torch.equal(results['confidence'][contested], torch.tensor([5, 9, 2], dtype=torch.uint8)[best][contested])
    assert (results['smaller'][contested] == 9).all()  # 19 x 19 against 25 x 25


def test_report_equals_the_metric_on_the_same_masks(voc_root, baselines, tmp_path):
    ids = read_split(split_file(voc_root, 'train_aug'))
    report = test_backbone.main(parse(test_backbone, '--type', 'masks', '--root_path', voc_root, '--pred_dir',
                                      baselines['box'], baselines['crf'], '--save_path', tmp_path, *CPU))
    truth = labels(os.path.join(voc_root, 'SegmentationClassAug'), ids)
    for name, folder in (('box', baselines['box']), ('crf', baselines['crf'])):
        expected = scores(truth, labels(folder, ids), 21)
        row = report['methods'][name]
        assert row['Mean IoU'] == pytest.approx(expected['Mean IoU'])
        assert row['Pixel Accuracy'] == pytest.approx(expected['Pixel Accuracy'])
        assert row['Class IoU']['person'] == pytest.approx(np.nan_to_num(expected['Class IoU'][15], nan=-1)) \
            or row['Class IoU']['person'] is None
        assert np.asarray(row['confusion']).sum() == sum((t != 255).sum() for t in truth)
    assert report['methods']['box']['box foreground']['recall'] == 1.0
    methods = report['methods']
    assert methods['crf']['box foreground']['precision'] > methods['box']['box foreground']['precision']
    stem = tmp_path / 'masks_report_box+crf'
    assert json.load(open(f'{stem}.json'))['methods'].keys() == {'box', 'crf'}
    table = open(f'{stem}.md').read().splitlines()
    assert table[0].startswith('| pseudo masks | mIoU |') and len(table) == 4 and table[2].startswith('| box |')


def test_figures_have_the_expected_size_and_content(voc_root, baselines):
    image_id, image_path, boxes, _ = voc_box_items(voc_root, read_split(split_file(voc_root, 'train_aug')))[0]
    image = read_image_bgr(image_path)
    masks = {method: read_label(os.path.join(folder, f'{image_id}.png')) for method, folder in baselines.items()}
    truth = read_label(os.path.join(voc_root, 'SegmentationClassAug', f'{image_id}.png'))
    grid = np.asarray(comparison_grid(image, boxes, masks, truth, VOC_CLASSES))
    assert grid.shape[1] == 5 * (96 + 4) + 4 and grid.shape[0] > 96
    assert len(np.unique(grid.reshape(-1, 3), axis=0)) > 50  # an image, colours and text, not a blank canvas
    painted = overlay(image, truth)
    assert painted.shape == (96, 96, 3) and (painted[truth > 0] != image[truth > 0][:, ::-1]).any()
    curve = np.asarray(training_curve([10, 20, 30, 40], [2.0, 1.2, 0.9, 0.8], 'loss'))
    assert curve.shape == (220, 360, 3) and ((curve == [31, 119, 180]).all(-1)).sum() > 100  # the drawn line


def test_a_backbone_that_predicts_one_class_everywhere_is_named():
    names = ('background', 'cat', 'dog')
    collapsed = [[5, 0, 0], [3, 0, 0], [2, 0, 0]]  # rows: truth, columns: prediction; all predicted background
    learned = [[5, 1, 0], [1, 2, 0], [2, 0, 0]]
    assert one_class_everywhere({'without CRF': collapsed, 'with CRF': learned}, names) == \
        {'without CRF': 'background'}
    assert one_class_everywhere({'without CRF': learned}, names) == {}


def test_long_titles_wrap_within_their_panel():
    """A title wider than its panel goes on several lines under it, so that it never runs into the next one."""
    label = np.zeros((96, 96), np.uint8)
    masks = {'LPG round 2, uniform probabilities': label, 'box': label}
    grid = np.asarray(comparison_grid(np.zeros((96, 96, 3), np.uint8), [], masks, None, VOC_CLASSES))
    one_line = np.asarray(comparison_grid(np.zeros((96, 96, 3), np.uint8), [], {'box': label}, None, VOC_CLASSES))
    assert grid.shape[0] > one_line.shape[0]  # the title area grew by a line
    gap = grid[:30, 4 + 2 * (96 + 4) - 4:4 + 2 * (96 + 4)]  # the white gap between the second and third panels
    assert (gap == 255).all()


def test_training_writes_a_loss_log_and_curve(voc_root, tmp_path):
    flags = ['--root_path', voc_root, '--label_path_name', 'SegmentationClassAug', '--save_path', tmp_path,
             '--from_scratch', '--batch_size', 2, '--crop_size', 33, '--num_print_log', 1, *CPU]
    train_backbone.main(parse(train_backbone, *flags, '--num_iterations', 3))
    train_backbone.main(parse(train_backbone, *flags, '--num_iterations', 4, '--resume'))
    with open(layout.loss_log(str(tmp_path))) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r['iteration']) for r in rows] == [1, 2, 3, 4] and all(float(r['loss']) > 0 for r in rows)
    assert Image.open(layout.loss_curve(str(tmp_path))).size == (360, 220)


@pytest.fixture(scope='module')
def vgg(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp('model') / 'vgg16_final.pth',
                           **DeepLabLargeFOV(num_classes=21).state_dict())


@pytest.mark.parametrize('crf', [False, True])
def test_predict_writes_the_evaluation_server_layout(voc_root, vgg, tmp_path, crf):
    test_backbone.main(parse(test_backbone, '--type', 'predict', '--root_path', voc_root, '--model_path', vgg,
                             '--test_size', 97, '--save_path', tmp_path, '--overlays',
                             *(['--crf', '--n_jobs', 1] if crf else []), *CPU))
    folder = tmp_path / 'results' / 'VOC2012' / 'Segmentation' / 'comp6_test_cls'
    ids = read_split(os.path.join(voc_root, 'ImageSets', 'Segmentation', 'test.txt'))
    assert sorted(os.listdir(folder)) == sorted(f'{i}.png' for i in ids)
    png = Image.open(folder / f'{ids[0]}.png')
    assert png.mode == 'P' and png.size == (96, 96)
    assert Image.open(tmp_path / 'overlays' / f'{ids[0]}.png').size == (96, 96)


def test_test_time_augmentation(capsys):
    torch.manual_seed(0)
    model = DeepLabLargeFOV(num_classes=21).eval()
    images = torch.randn(2, 3, 65, 65) * 30
    with torch.no_grad():
        plain = model(images)
        assert torch.equal(augmented_logits(model, images), plain)  # the default is the release's single scale
        flipped = augmented_logits(model, images, flip=True)
        assert torch.allclose(flipped, (plain + model(images.flip(-1)).flip(-1)) / 2, atol=1e-5)
        several = augmented_logits(model, images, scales=(0.75, 1.0, 1.25), flip=True)
    assert several.shape == plain.shape and not torch.allclose(several, plain)
    with pytest.raises(SystemExit, match='2'):  # refused where it is parsed: the logits are averaged at scale 1
        parse(test_backbone, '--root_path', 'x', '--scales', '0.5,0.75')
    assert 'does not hold 1' in capsys.readouterr().err


def test_overlap_rule_folders_and_refusals(voc_root, baselines, tmp_path):
    out = genPseudoMasks.main(parse(genPseudoMasks, '--dataset', 'voc', '--method', 'box', '--overlap', 'first',
                                    '--voc_root_dir', voc_root, '--voc_proposals_dir', tmp_path, '--n_jobs', 1, *CPU))
    assert out == os.path.join(str(tmp_path), 'box_first')  # not the default rule: a folder of its own
    for image_id, image_path, boxes, _ in voc_box_items(voc_root, read_split(split_file(voc_root, 'train_aug'))):
        first, smaller = (read_label(os.path.join(d, f'{image_id}.png')) for d in (out, baselines['box']))
        covered = np.zeros(first.shape, int)
        for _, x1, y1, x2, y2 in boxes:
            covered[y1:y2 + 1, x1:x2 + 1] += 1
        assert (first[covered < 2] == smaller[covered < 2]).all()
    with pytest.raises(InputError, match='--overlap confidence needs foreground probabilities'):
        genPseudoMasks.main(parse(genPseudoMasks, '--dataset', 'voc', '--method', 'grabcut', '--overlap',
                                  'confidence', '--voc_root_dir', voc_root, '--voc_proposals_dir', tmp_path, *CPU))


@pytest.mark.skipif(importlib.util.find_spec('tensorboard') is not None, reason='tensorboard is installed here')
def test_tensorboard_without_the_package_says_so(voc_root, tmp_path):
    with pytest.raises(SystemExit, match='pip install tensorboard'):
        train_backbone.main(parse(train_backbone, '--root_path', voc_root, '--label_path_name', 'SegmentationClassAug',
                                  '--save_path', tmp_path, '--from_scratch', '--num_iterations', 1, '--batch_size', 2,
                                  '--crop_size', 33, '--tensorboard', *CPU))
