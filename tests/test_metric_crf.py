"""utils.evaluation.metric and utils.crf against outputs of the original release's metric and CRF code on fixed inputs
(tests/data/util_refs.npz), plus the properties the evaluation relies on."""
import os
from dataclasses import asdict

import numpy as np
import pytest

from models.backbones import get_backbone
from utils.crf import DenseCRF
from utils.evaluation.metric import confusion_matrix, scores

REFS = os.path.join(os.path.dirname(__file__), 'data', 'util_refs.npz')


def reference_cases():
    """The fixed inputs the reference outputs were computed on."""
    rng = np.random.default_rng(11)
    gts = [rng.integers(0, 21, (37, 53)) for _ in range(4)]
    gts[0][:5] = 255
    preds = [np.where(rng.random(g.shape) < 0.6, np.where(g == 255, 0, g), rng.integers(0, 21, g.shape)) for g in gts]
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    logit = rng.normal(size=(21, 48, 64)).astype(np.float32) * 2
    prob = np.exp(logit) / np.exp(logit).sum(0, keepdims=True)
    return gts, preds, image, prob.astype(np.float32)


def test_scores_match_the_original():
    gts, preds, _, _ = reference_cases()
    s = scores(gts, preds, n_class=21)
    vec = [s['Pixel Accuracy'], s['Mean Accuracy'], s['Frequency Weighted IoU'], s['Mean IoU']]
    vec += [s['Class IoU'][i] for i in range(21)]
    np.testing.assert_allclose(np.nan_to_num(vec, nan=-1), np.nan_to_num(np.load(REFS)['vec'], nan=-1), atol=1e-9)


@pytest.mark.parametrize('model_type, key', [('vgg16', 'q1'), ('resnet101', 'q2')])
def test_crf_matches_the_original(model_type, key):
    _, _, image, prob = reference_cases()
    refined = DenseCRF(**asdict(get_backbone(model_type).crf_params))(image, prob)
    expected = np.load(REFS)[key]
    assert refined.shape == expected.shape == (21, 48, 64)
    assert np.abs(refined - expected).max() < 1e-4


def test_void_is_ignored_and_absent_classes_do_not_count():
    gt = np.array([[0, 0, 1, 1], [255, 255, 1, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 1, 1]])
    hist = confusion_matrix(gt, pred, 3)
    assert hist.sum() == 6 and hist[0, 1] == 1  # the two void pixels are not counted
    s = scores([gt], [pred], 3)
    # class 0: tp 1, fp 0, fn 1 -> 0.5; class 1: tp 4, fp 1 -> 0.8; class 2 never in the ground truth -> excluded
    assert s['Mean IoU'] == pytest.approx((0.5 + 0.8) / 2)
    assert np.isnan(s['Class IoU'][2])
    assert s['Pixel Accuracy'] == pytest.approx(5 / 6)


def test_crf_refuses_mismatched_sizes():
    with pytest.raises(ValueError, match='differ in size'):
        DenseCRF(**asdict(get_backbone('vgg16').crf_params))(np.zeros((4, 5, 3), np.uint8),
                                                              np.full((2, 4, 6), 0.5, np.float32))
