"""The networks match the original release (keys, shapes, logits) and have the right strides."""
import json
import zlib
from pathlib import Path

import pytest
import torch

import models
from models import LPG_STRIDE, DeepLabLargeFOV, DeepLabV2ResNet101, LPGNet, build_backbone

torch.set_num_threads(2)
DATA = Path(__file__).parent / 'data'

# The networks of the reference files, by the names used there.
REFERENCE_NETS = {
    'vgg16_21': ('DeepLabLargeFOV(num_classes=21)', lambda: DeepLabLargeFOV(num_classes=21)),
    'vgg16_61': ('DeepLabLargeFOV(num_classes=61)', lambda: DeepLabLargeFOV(num_classes=61)),
    'resnet101_21': ('DeepLabV2ResNet101(num_classes=21)', lambda: DeepLabV2ResNet101(num_classes=21)),
    'lpg_5ch': ('LPGNet(in_channels=5)', lambda: LPGNet(in_channels=5)),
    'lpg_4ch': ('LPGNet(in_channels=4)', lambda: LPGNet(in_channels=4)),
}


def key_derived_weights(state_dict):
    """Weights derived from each key's name (as in the tool that made the reference outputs),
    so the reference logits do not depend on the initialisation of either implementation."""
    out = {}
    for key in sorted(state_dict):
        tensor = state_dict[key]
        gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith('num_batches_tracked'):
            out[key] = torch.zeros_like(tensor)
        elif key.endswith('running_var'):
            out[key] = torch.rand(tensor.shape, generator=gen) * 0.5 + 0.75
        elif key.endswith('running_mean'):
            out[key] = torch.randn(tensor.shape, generator=gen) * 0.1
        elif tensor.dim() >= 2:
            out[key] = torch.randn(tensor.shape, generator=gen) * (2.0 / tensor[0].numel()) ** 0.5
        elif 'bn' in key or (key.split('.')[-2].isdigit() and key.endswith('weight')):
            out[key] = 1.0 + 0.1 * torch.randn(tensor.shape, generator=gen)  # BatchNorm scale
        else:
            out[key] = 0.05 * torch.randn(tensor.shape, generator=gen)
    return out


def reference_inputs():
    gen = torch.Generator().manual_seed(7)
    image = torch.randn(1, 3, 65, 65, generator=gen) * 50
    seg_prob = torch.rand(1, 1, 128, 128, generator=gen)
    box_mask = (torch.rand(1, 1, 128, 128, generator=gen) > 0.5).float()
    lpg_image = torch.randn(1, 3, 128, 128, generator=gen) * 50
    lpg5 = torch.cat([seg_prob, box_mask, lpg_image], 1)
    return {'vgg16_21': image, 'vgg16_61': image, 'resnet101_21': image,
            'lpg_5ch': lpg5, 'lpg_4ch': lpg5[:, 1:]}


@pytest.fixture(scope='module')
def reference_outputs():
    return torch.load(DATA / 'model_refs.pt', weights_only=True)


@pytest.mark.parametrize('name', list(REFERENCE_NETS))
def test_state_dict_matches_release(name):
    key_name, build = REFERENCE_NETS[name]
    expected = json.loads((DATA / 'state_dict_keys.json').read_text())[key_name]
    state = build().state_dict()
    assert list(state) == list(expected)
    assert {k: list(v.shape) for k, v in state.items()} == expected


@pytest.mark.parametrize('name', list(REFERENCE_NETS))
def test_logits_match_release(name, reference_outputs):
    net = REFERENCE_NETS[name][1]()
    net.load_state_dict(key_derived_weights(net.state_dict()))
    net.eval()
    with torch.no_grad():
        out = net(reference_inputs()[name])
    ref = reference_outputs[name]
    assert out.shape == ref.shape
    assert float((out - ref).norm() / ref.norm()) < 1e-4


def test_vgg_output_stride():
    net = DeepLabLargeFOV(num_classes=21).eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 3, 65, 65)).shape == (2, 21, 9, 9)
    assert net.fc8 is net.features[38]
    assert float(net.fc8.weight.detach().std()) == pytest.approx(0.01, rel=0.1)
    assert float(net.fc8.bias.detach().abs().max()) == 0.0


def test_resnet_output_stride_and_multiscale_outputs():
    net = DeepLabV2ResNet101(num_classes=3)
    x = torch.zeros(1, 3, 65, 65)
    with torch.no_grad():
        assert net.eval()(x).shape == (1, 3, 17, 17)  # no max-pool: output stride 4
        outs = net.train()(x)
    # 65 * 0.5 = 32 -> 8, 65 * 0.75 = 48 -> 12
    assert [tuple(o.shape[-2:]) for o in outs] == [(17, 17), (8, 8), (12, 12), (17, 17)]
    assert torch.equal(outs[3], torch.maximum(outs[0], outs[3]))


def test_resnet_batchnorm_stays_frozen_in_train_mode():
    net = DeepLabV2ResNet101(num_classes=3).train()
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert net.training and norms and not any(m.training for m in norms)
    assert not any(p.requires_grad for m in norms for p in m.parameters())
    before = norms[0].running_mean.clone()
    net(torch.randn(1, 3, 33, 33))
    assert torch.equal(norms[0].running_mean, before)
    assert DeepLabV2ResNet101(num_classes=3, freeze_bn=False).train().base.layer0[1].training


def test_aspp_init():
    aspp = DeepLabV2ResNet101(num_classes=21).base.aspp
    assert [c.dilation for c in aspp.children()] == [(6, 6), (12, 12), (18, 18), (24, 24)]
    assert float(aspp.c0.weight.detach().std()) == pytest.approx(0.01, rel=0.1)
    assert float(aspp.c3.bias.detach().abs().max()) == 0.0


def test_lpg_output_stride():
    net = LPGNet(in_channels=4).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 4, LPG_STRIDE, 2 * LPG_STRIDE)).shape == (1, 2, 32, 64)


def test_lpg_backward_runs():
    net = LPGNet(in_channels=5).train()
    net(torch.randn(2, 5, 128, 128)).sum().backward()
    assert net.pre[0].conv.weight.grad is not None


@pytest.mark.parametrize('shape', [(1, 5, 100, 100), (1, 5, 128, 192)])
def test_lpg_rejects_sides_not_multiple_of_128(shape):
    with pytest.raises(ValueError, match='multiples of 128'):
        LPGNet(in_channels=5)(torch.zeros(shape))


def test_lpg_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match='5 input channels'):
        LPGNet(in_channels=5)(torch.zeros(1, 4, 128, 128))


def test_build_backbone():
    assert isinstance(build_backbone('vgg16', 61), DeepLabLargeFOV)
    assert build_backbone('vgg16', 61).fc8.out_channels == 61
    assert isinstance(build_backbone('resnet101', 21), DeepLabV2ResNet101)
    with pytest.raises(ValueError, match='resnet50'):
        build_backbone('resnet50', 21)
    assert models.BACKBONES.keys() == {'vgg16', 'resnet101'}


@pytest.mark.parametrize('name', ['vgg16', 'resnet101'])
def test_kaiming_scratch_init(name):
    """main.py --from_scratch kaiming: convolutions Kaiming-normal (fan_out, ReLU), the classifier N(0, 0.01),
    every conv bias zero, batch norm untouched; --from_scratch pytorch leaves the built network as it is."""
    from models.backbones import get_backbone
    spec = get_backbone(name)
    torch.manual_seed(0)
    model = spec.scratch_init(build_backbone(name, 21), 'kaiming')
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    classifier = [m for n, m in convs if spec.is_classifier(f'{n}.weight')]
    assert classifier
    for n, m in convs:
        expected = 0.01 if m in classifier else (2 / (m.out_channels * m.kernel_size[0] * m.kernel_size[1])) ** 0.5
        assert m.weight.std().item() == pytest.approx(expected, rel=0.2 if m.weight.numel() < 2000 else 0.05), n
        assert m.bias is None or not m.bias.any()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.weight.eq(1).all() and not m.bias.any() for m in norms)
    torch.manual_seed(0)
    default = build_backbone(name, 21)
    torch.manual_seed(0)
    kept = spec.scratch_init(build_backbone(name, 21), 'pytorch')
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), kept.state_dict().values()))
    with pytest.raises(ValueError, match='unknown from-scratch initialisation'):
        spec.scratch_init(kept, 'xavier')

