"""Checkpoint loading/saving and the ImageNet initialisation converters."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from datasets.constants import MEAN_BGR
from models import DeepLabLargeFOV, DeepLabV2ResNet101, LPGNet
from models.imagenet import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from utils.engine.checkpoint import load_checkpoint, load_weights, save_checkpoint, strip_module_prefix
from utils.imagenet_init import convert, get_args_parser
from utils.imagenet_init import main as imagenet_init_main

torch.set_num_threads(2)


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_strip_module_prefix():
    assert strip_module_prefix({'module.a.b': 1, 'c': 2}) == {'a.b': 1, 'c': 2}


def test_load_module_prefixed_plain_state_dict(tmp_path):
    src = LPGNet(in_channels=4)
    path = tmp_path / 'LPG_Round1.pth'
    torch.save({'module.' + k: v for k, v in src.state_dict().items()}, path)
    dst = load_weights(LPGNet(in_channels=4), path, what='LPGNet(in_channels=4)')
    _assert_same_weights(src, dst)


@pytest.mark.parametrize('wrapper', ['state_dict', 'model'])
def test_load_nested_state_dict(tmp_path, wrapper):
    src = DeepLabLargeFOV(num_classes=5)
    path = tmp_path / 'ckpt.pth'
    save_checkpoint(path, **{wrapper: src.state_dict(), 'step': 7})
    _assert_same_weights(src, load_weights(DeepLabLargeFOV(num_classes=5), path))


def test_wrong_class_count_is_refused_with_the_misshaped_key(tmp_path):
    path = tmp_path / 'voc_vgg16_Round1.pth'
    torch.save(DeepLabLargeFOV(num_classes=21).state_dict(), path)
    with pytest.raises(ValueError) as err:
        load_weights(DeepLabLargeFOV(num_classes=61), path, what='COCO-60 vgg16 backbone')
    message = str(err.value)
    assert str(path) in message
    assert 'COCO-60 vgg16 backbone' in message
    assert 'features.38.weight: checkpoint [21, 1024, 1, 1] vs model [61, 1024, 1, 1]' in message
    assert 'features.38.bias: checkpoint [21] vs model [61]' in message


def test_wrong_network_lists_missing_and_unexpected_keys(tmp_path):
    path = tmp_path / 'lpg.pth'
    torch.save(LPGNet(in_channels=5).state_dict(), path)
    with pytest.raises(ValueError) as err:
        load_weights(DeepLabLargeFOV(num_classes=21), path)
    message = str(err.value)
    assert 'DeepLabLargeFOV' in message
    assert 'missing keys (32): features.0.weight' in message
    assert 'unexpected keys (484): pre.0.conv.weight' in message
    assert 'more)' in message  # long lists are truncated


def test_lpg_channel_mismatch_names_first_conv(tmp_path):
    path = tmp_path / 'LPG_Round2.pth'
    torch.save(LPGNet(in_channels=5).state_dict(), path)
    with pytest.raises(ValueError, match=r'pre\.0\.conv\.weight: checkpoint \[48, 5, 7, 7\] vs model \[48, 4, 7, 7\]'):
        load_weights(LPGNet(in_channels=4), path)


def test_missing_and_unreadable_files(tmp_path):
    missing = tmp_path / 'nope.pth'
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_weights(LPGNet(), missing)
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'this is not a checkpoint')
    with pytest.raises(ValueError, match='garbage.pth'):
        load_weights(LPGNet(), garbage)
    with pytest.raises(ValueError, match='garbage.pth'):
        load_checkpoint(garbage)


def test_save_checkpoint_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / 'new' / 'dir' / 'ckpt.pth'
    save_checkpoint(path, step=3, weights=torch.arange(4))
    save_checkpoint(path, step=4, weights=torch.arange(5))  # overwrite in place
    assert os.listdir(path.parent) == ['ckpt.pth']
    state = load_checkpoint(path)
    assert state['step'] == 4 and torch.equal(state['weights'], torch.arange(5))


def test_save_checkpoint_failure_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / 'ckpt.pth'
    save_checkpoint(path, step=1)
    with pytest.raises(Exception):
        save_checkpoint(path, step=2, bad=lambda: None)  # lambdas cannot be pickled
    assert os.listdir(tmp_path) == ['ckpt.pth']
    assert load_checkpoint(path)['step'] == 1


def test_vgg16_to_largefov(tmp_path, capsys):
    torch.manual_seed(0)
    src_state = torchvision.models.vgg16(weights=None).state_dict()
    src, dst = tmp_path / 'vgg16.pth', tmp_path / 'init' / 'vgg16_largefov.pth'
    torch.save(src_state, src)
    missing, unexpected = convert('vgg16', src, dst, num_classes=61)
    assert missing == ['features.38.weight', 'features.38.bias']
    assert unexpected == ['classifier.6.weight', 'classifier.6.bias']
    assert 'features.38.weight' in capsys.readouterr().out

    net = load_weights(DeepLabLargeFOV(num_classes=61), dst)
    state = net.state_dict()
    for i in (2, 14, 28):  # conv1_1 folds the input normalisation (test_vgg16_conv1_1_matches_torchvision)
        assert torch.equal(state[f'features.{i}.weight'], src_state[f'features.{i}.weight'])
        assert torch.equal(state[f'features.{i}.bias'], src_state[f'features.{i}.bias'])
    fc6 = src_state['classifier.0.weight'].view(4096, 512, 7, 7)
    expected_fc6 = fc6[::4][:, :, [0, 3, 6]][:, :, :, [0, 3, 6]]
    assert torch.equal(state['features.32.weight'], expected_fc6)
    assert torch.equal(state['features.32.bias'], src_state['classifier.0.bias'][::4])
    assert torch.equal(state['features.35.weight'][:, :, 0, 0], src_state['classifier.3.weight'][::4, ::4])
    assert torch.equal(state['features.35.bias'], src_state['classifier.3.bias'][::4])


@pytest.mark.slow
def test_resnet101_to_deeplab_via_cli(tmp_path, capsys):
    torch.manual_seed(0)
    src_state = torchvision.models.resnet101(weights=None).state_dict()
    src, dst = tmp_path / 'resnet101.pth', tmp_path / 'resnet101_init.pth'
    torch.save(src_state, src)
    missing, unexpected = convert('resnet101', src, dst, num_classes=21)
    assert missing == [f'base.aspp.c{i}.{p}' for i in range(4) for p in ('weight', 'bias')]
    assert unexpected == ['fc.weight', 'fc.bias']

    state = load_weights(DeepLabV2ResNet101(num_classes=21), dst).state_dict()
    # conv1 and bn1's running mean fold the input normalisation (test_resnet101_stem_matches_torchvision)
    assert torch.equal(state['base.layer0.1.running_var'], src_state['bn1.running_var'])
    assert torch.equal(state['base.layer1.0.conv1.weight'], src_state['layer1.0.conv1.weight'])
    assert torch.equal(state['base.layer3.22.conv2.weight'], src_state['layer3.22.conv2.weight'])

    cli_dst = tmp_path / 'cli.pth'
    imagenet_init_main(get_args_parser().parse_args(
        ['--arch', 'resnet101', '--src', str(src), '--dst', str(cli_dst), '--num_classes', '61']))
    assert 'fc.weight' in capsys.readouterr().out
    assert load_checkpoint(cli_dst)['model']['base.aspp.c0.weight'].shape == (61, 2048, 3, 3)
    assert not torch.equal(state['base.layer0.0.weight'], src_state['conv1.weight'])

    # --match_release: torchvision's file as the release loads it, the first layer unchanged.
    release_dst = tmp_path / 'release.pth'
    imagenet_init_main(get_args_parser().parse_args(
        ['--arch', 'resnet101', '--src', str(src), '--dst', str(release_dst), '--match_release']))
    release = load_weights(DeepLabV2ResNet101(num_classes=21), release_dst).state_dict()
    assert torch.equal(release['base.layer0.0.weight'], src_state['conv1.weight'])
    assert torch.equal(release['base.layer0.1.running_mean'], src_state['bn1.running_mean'])
    assert torch.equal(release['base.layer1.0.conv1.weight'], src_state['layer1.0.conv1.weight'])
    assert load_checkpoint(release_dst)['input_folded'] is False


def test_converter_refuses_the_wrong_source(tmp_path):
    src = tmp_path / 'not_vgg.pth'
    torch.save(LPGNet().state_dict(), src)
    with pytest.raises(ValueError, match='not_vgg.pth'):
        convert('vgg16', src, tmp_path / 'out.pth')


@pytest.mark.slow
def test_imagenet_init_runs_as_a_script(tmp_path):
    script = Path(__file__).resolve().parents[1] / 'utils' / 'imagenet_init.py'
    done = subprocess.run([sys.executable, str(script), '--help'], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert '--arch {resnet101,vgg16}' in done.stdout


def imagenet_and_project_inputs(height=37, width=45):
    """The same random image as torchvision's ImageNet input (RGB [0, 1], normalised) and as this project's
    (BGR 0-255 minus MEAN_BGR)."""
    rgb = torch.randint(0, 256, (1, 3, height, width), generator=torch.Generator().manual_seed(3)).float()
    mean = torch.tensor(IMAGENET_MEAN_RGB).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD_RGB).view(1, 3, 1, 1)
    return (rgb / 255 - mean) / std, rgb.flip(1) - torch.from_numpy(MEAN_BGR).view(1, 3, 1, 1)


@torch.no_grad()
def test_vgg16_conv1_1_matches_torchvision(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.vgg16(weights=None).eval()
    torch.save(reference.state_dict(), tmp_path / 'vgg16.pth')
    convert('vgg16', tmp_path / 'vgg16.pth', tmp_path / 'init.pth')
    net = load_weights(DeepLabLargeFOV(num_classes=21), tmp_path / 'init.pth').eval()
    imagenet_input, project_input = imagenet_and_project_inputs()
    expected = reference.features[0](imagenet_input)
    got = net.features[0](project_input)
    # Equal away from the 1-pixel zero-padding border (zero means black there, the mean colour here).
    torch.testing.assert_close(got[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(got[..., 0, :], expected[..., 0, :], atol=1e-3)


@torch.no_grad()
def test_resnet101_stem_matches_torchvision(tmp_path):
    torch.manual_seed(2)
    reference = torchvision.models.resnet101(weights=None).eval()
    bn = reference.bn1  # random running statistics and affine parameters, so the fold is exercised
    bn.running_mean.normal_(0, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.normal_(1, 0.2)
    bn.bias.normal_(0, 0.2)
    torch.save(reference.state_dict(), tmp_path / 'resnet101.pth')
    convert('resnet101', tmp_path / 'resnet101.pth', tmp_path / 'init.pth')
    net = load_weights(DeepLabV2ResNet101(num_classes=21), tmp_path / 'init.pth').eval()
    imagenet_input, project_input = imagenet_and_project_inputs()
    expected = reference.bn1(reference.conv1(imagenet_input))
    got = net.base.layer0[1](net.base.layer0[0](project_input))  # conv1 -> frozen BN (stride 2, padding 3)
    torch.testing.assert_close(got[..., 2:-2, 2:-2], expected[..., 2:-2, 2:-2], rtol=1e-4, atol=1e-4)
