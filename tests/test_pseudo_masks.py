"""The generator input and box -> pseudo-mask composition (models.lpg, datasets.boxes)."""
import copy

import numpy as np
import pytest
import torch
from PIL import Image

from datasets.boxes import BoxImage, BoxItem
from datasets.io import read_label
from models import DeepLabLargeFOV, LPGNet
from models.lpg import class_channel, lpg_input
from utils.engine.precision import Precision
from utils.pseudo_masks import baseline_image, batch_labels, box_baseline, compose_label, generate_labels_per_class


def test_lpg_input_channel_order():
    images = torch.full((2, 3, 4, 4), 7.0)
    boxes = torch.ones(2, 1, 4, 4)
    probs = torch.full((2, 1, 4, 4), 0.25)
    x = lpg_input(images, boxes, probs)
    assert x.shape == (2, 5, 4, 4)
    assert (x[:, 0] == 0.25).all() and (x[:, 1] == 1).all() and (x[:, 2:] == 7).all()
    assert torch.equal(lpg_input(images, boxes), x[:, 1:])  # round 1: no probability channel


def test_class_channel_picks_each_samples_class():
    probs = torch.arange(3 * 5, dtype=torch.float).view(1, 5, 3, 1).expand(3, 5, 3, 4)
    picked = class_channel(probs, torch.tensor([4, 0, 2]))
    assert picked.shape == (3, 1, 3, 4)
    assert torch.equal(picked[:, 0], probs[[0, 1, 2], [4, 0, 2]])


def test_compose_first_class_wins_and_stays_in_its_boxes():
    foreground = torch.ones(2, 4, 6, dtype=torch.bool)
    boxes = torch.zeros(2, 4, 6, dtype=torch.bool)
    boxes[0, :, :4] = True
    boxes[1, :, 2:] = True
    label = compose_label(foreground, boxes, [15, 3])
    expected = np.array([[15, 15, 15, 15, 3, 3]] * 4, dtype=np.uint8)
    np.testing.assert_array_equal(label.numpy(), expected)
    foreground[0] = False  # where class 15 finds background, the later class may write
    np.testing.assert_array_equal(compose_label(foreground, boxes, [15, 3]).numpy(),
                                  np.array([[0, 0, 3, 3, 3, 3]] * 4, dtype=np.uint8))


def sample(size=128, height=100, width=120):
    masks = torch.zeros(2, size, size)
    masks[0, 10:60, 20:90] = 1
    masks[1, 40:95, 50:115] = 1
    return BoxImage(image=torch.randn(3, size, size) * 40, box_masks=masks, class_ids=torch.tensor([5, 12]),
                    entry_boxes=[[(20, 10, 89, 59)], [(50, 40, 114, 94)]], height=height, width=width, image_id='a',
                    orientation=1)


def test_the_box_baseline_fills_the_boxes_of_the_image_smaller_over_larger(tmp_path):
    """genPseudoMasks.py --method box on one image, with its default overlap rule (the smaller box wins)."""
    Image.fromarray(np.full((100, 120, 3), 128, np.uint8)).save(tmp_path / 'image.png')
    item = BoxItem('a', str(tmp_path / 'image.png'), [(5, 20, 10, 89, 59), (12, 50, 40, 114, 94)])
    assert baseline_image(box_baseline, item, str(tmp_path / 'out'), 'smaller', per_box=False) == (1, None)
    label = read_label(str(tmp_path / 'out' / 'a.png'))
    assert label.shape == (100, 120)
    assert (label[10:60, 20:90] == 5).all() and (label[60:95, 50:115] == 12).all() and label[0, 0] == 0


def script_labels(lpg, samples, device, backbone=None, max_batch=16, precision=None):
    """The labels genPseudoMasks.py makes of these samples: its own per-batch path (utils.pseudo_masks.batch_labels,
    under the release's overlap rule), as numpy arrays."""
    labels, failed = batch_labels(lpg, backbone, samples, device, precision, 'first', max_batch)
    assert not failed
    return [label.cpu().numpy() for label, _ in labels]


def random_sample(seed, size, num_classes=21):
    """A padded image with 0-3 classes of random boxes; (height, width) smaller than the padded size."""
    gen = torch.Generator().manual_seed(seed)
    count = int(torch.randint(0, 4, (1,), generator=gen))
    masks, entry_boxes = torch.zeros(count, size, size), []
    for k in range(count):
        top, left = torch.randint(0, size // 2, (2,), generator=gen).tolist()
        masks[k, top:top + size // 3, left:left + size // 2] = 1
        entry_boxes.append([(left, top, left + size // 2 - 1, top + size // 3 - 1)])
    class_ids = torch.randperm(num_classes - 1, generator=gen)[:count] + 1
    return BoxImage(image=torch.randn(3, size, size, generator=gen) * 40, box_masks=masks, class_ids=class_ids,
                    entry_boxes=entry_boxes, height=size - 7, width=size - 11, image_id=str(seed), orientation=1)


@pytest.mark.parametrize('amp', [pytest.param(None, marks=pytest.mark.slow), 'off'])
@torch.no_grad()
def test_batched_generation_equals_the_one_class_at_a_time_algorithm(amp):
    """Several images of two padded sizes in one call, with 0 to 3 classes each, round 2 (backbone) and
    round 1: in float32 on the CPU every pixel equals the release's per-class loop (contiguous float32), also
    under `--amp off`, whose CPU inference runs in channels-last."""
    torch.manual_seed(0)
    lpg5, lpg4, backbone = LPGNet(in_channels=5).eval(), LPGNet(in_channels=4).eval(), DeepLabLargeFOV(21).eval()
    samples = [sample()] + [random_sample(seed, 128 if seed % 2 else 256) for seed in range(7)]
    assert any(len(s.class_ids) == 0 for s in samples)
    cpu = torch.device('cpu')
    precision = None if amp is None else Precision(amp, cpu)
    assert precision is None or (precision.label == 'fp32' and precision.channels_last)
    def prepare(net):
        return net if precision is None or net is None else precision.prepare_model(copy.deepcopy(net))
    for lpg, net in ((lpg5, backbone), (lpg4, None)):
        batched = script_labels(prepare(lpg), samples, cpu, prepare(net), max_batch=3, precision=precision)
        for s, label in zip(samples, batched):
            expected = generate_labels_per_class(lpg, s, cpu, net)
            assert label.shape == (s.height, s.width)
            np.testing.assert_array_equal(label, expected)
            assert set(np.unique(label).tolist()) <= {0} | set(s.class_ids.tolist())
    assert any(label.any() for label in batched)


@torch.no_grad()
@pytest.mark.slow
def test_generation_under_bf16_autocast():
    torch.manual_seed(0)
    lpg, backbone = LPGNet(in_channels=5).eval(), DeepLabLargeFOV(21).eval()
    samples = [sample(), random_sample(3, 128)]
    bf16 = Precision('bf16', torch.device('cpu'))
    labels = script_labels(lpg, samples, torch.device('cpu'), backbone, precision=bf16)
    exact = script_labels(lpg, samples, torch.device('cpu'), backbone)
    for label, reference in zip(labels, exact):
        assert label.shape == reference.shape and label.dtype == np.uint8
        assert (label == reference).mean() > 0.9  # bf16 moves the boundary by a few pixels at most


def test_uniform_ablation_changes_only_the_probability_channel():
    """trainLPG.py / genPseudoMasks.py --seg_probs uniform: the round-2 generator reads exactly what the method's
    reads (box mask, image), except the probability channel, which is 1 / classes everywhere instead of the
    backbone's probability of the sample's class; in training and in generation alike."""
    import trainLPG
    from models.lpg import UniformProbabilities, generate_foregrounds
    torch.manual_seed(0)
    lpg, backbone, uniform = LPGNet(in_channels=5), DeepLabLargeFOV(61).eval(), UniformProbabilities(61)
    torch.nn.init.normal_(backbone.fc8.bias, 0.0, 2.0)  # a backbone with an opinion: classes far from uniform
    seen = []
    lpg.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    cpu = torch.device('cpu')
    masks = torch.zeros(3, 1, 128, 128)
    masks[:, :, 20:90, 30:100] = 1
    batch = (torch.randn(3, 3, 128, 128) * 40, masks, torch.randint(0, 2, (3, 32, 32)), torch.tensor([4, 17, 60]))
    for probs in (backbone, uniform):
        trainLPG.generator_loss(lpg, probs, batch, Precision('off', cpu, training=True))
    lpg.eval()
    samples = [sample(), random_sample(2, 128, num_classes=61)]
    for probs in (backbone, uniform):
        generate_foregrounds(lpg, samples, cpu, probs, precision=Precision('off', cpu))
    for method, ablation in (seen[0:2], seen[2:4]):
        assert torch.equal(method[:, 1:], ablation[:, 1:])  # box mask and image
        assert torch.all(ablation[:, 0] == 1 / 61)
        assert (method[:, 0] - 1 / 61).abs().max() > 1e-3  # the backbone's channel says something else
