"""ImageNet initialisation of the DeepLab backbones from torchvision weight files.

Nothing is downloaded: pass the torchvision ImageNet state dict you already have
(e.g. vgg16-397923af.pth, resnet101-63fe2227.pth from ~/.cache/torch/hub/checkpoints).

    python utils/imagenet_init.py --arch vgg16 --src vgg16-397923af.pth --dst PretrainedModel/vgg16_largefov_init.pth
    python utils/imagenet_init.py --arch resnet101 --src resnet101-63fe2227.pth --dst PretrainedModel/resnet101_init.pth

The output holds {'model': state_dict, 'arch', 'source'} and loads with
utils.checkpoint.load_weights; the classifier (VGG fc8, ResNet ASPP) is freshly initialised.
"""
import argparse
import os
import sys

if __name__ == '__main__' and not __package__:
    # Run as a script: make the project root importable (models/, utils/).
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from models import DeepLabLargeFOV, DeepLabV2ResNet101
from utils.checkpoint import load_checkpoint, save_checkpoint, unwrap_state_dict

# torchvision `features` indices of the 13 VGG16 convs; DeepLabLargeFOV keeps the same indices.
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def _read_state_dict(path, required):
    state_dict = unwrap_state_dict(load_checkpoint(path), path)
    absent = [k for k in required if k not in state_dict]
    if absent:
        raise ValueError(f'{path} is not a torchvision ImageNet state dict of the expected network: '
                         f'missing {", ".join(absent[:5])}')
    return state_dict


def _load_and_save(model, state_dict, dst, arch, src):
    """Loads non-strictly (the classifier stays freshly initialised), reports what was
    not loaded, writes the result, and returns (missing_keys, unexpected_keys)."""
    result = model.load_state_dict(state_dict, strict=False)
    save_checkpoint(dst, model=model.state_dict(), arch=arch, source=os.path.abspath(src))
    print(f'{arch}: wrote {dst}')
    print(f'  not in {os.path.basename(src)}, freshly initialised ({len(result.missing_keys)}): '
          f'{", ".join(result.missing_keys)}')
    print(f'  in {os.path.basename(src)} but not used ({len(result.unexpected_keys)}): '
          f'{", ".join(result.unexpected_keys)}')
    return list(result.missing_keys), list(result.unexpected_keys)


def vgg16_to_largefov(src, dst, num_classes=21):
    """Converts torchvision's VGG16 ImageNet weights into a DeepLabLargeFOV initialisation.

    The 13 convs are copied. fc6/fc7 are shrunk from 4096 to 1024 channels by decimation,
    the DeepLab-V1 recipe: fc6 (4096 x 25088) is viewed as 4096 x 512 x 7 x 7 and keeps
    every 4th filter and the spatial taps 0, 3, 6 (a 3x3 kernel that, dilated by 12,
    covers a similar field of view); fc7 keeps every 4th row and column. fc8 is new.
    Returns (missing_keys, unexpected_keys) of the non-strict load.
    """
    source = _read_state_dict(src, ['classifier.0.weight', 'classifier.3.weight']
                              + [f'features.{i}.weight' for i in VGG16_CONV_INDICES])
    state_dict = {}
    for i in VGG16_CONV_INDICES:
        state_dict[f'features.{i}.weight'] = source[f'features.{i}.weight']
        state_dict[f'features.{i}.bias'] = source[f'features.{i}.bias']
    fc6 = source['classifier.0.weight'].reshape(4096, 512, 7, 7)
    state_dict['features.32.weight'] = fc6[::4][:, :, ::3, ::3].contiguous()
    state_dict['features.32.bias'] = source['classifier.0.bias'][::4].contiguous()
    fc7 = source['classifier.3.weight']
    state_dict['features.35.weight'] = fc7[::4, ::4].reshape(1024, 1024, 1, 1).contiguous()
    state_dict['features.35.bias'] = source['classifier.3.bias'][::4].contiguous()
    # Keep ImageNet's fc8 visible in the report of unused keys.
    state_dict.update({k: v for k, v in source.items() if k.startswith('classifier.6.')})
    return _load_and_save(DeepLabLargeFOV(num_classes), state_dict, dst, 'vgg16', src)


def resnet101_to_deeplab(src, dst, num_classes=21):
    """Converts torchvision's ResNet-101 ImageNet weights into a DeepLabV2ResNet101
    initialisation: conv1/bn1 -> base.layer0.0/1, layerN -> base.layerN; the ImageNet
    classifier (fc.*) is dropped and the ASPP (base.aspp.*) stays freshly initialised.
    Returns (missing_keys, unexpected_keys) of the non-strict load.
    """
    source = _read_state_dict(src, ['conv1.weight', 'bn1.weight', 'layer3.22.conv3.weight'])
    renames = {'conv1.': 'base.layer0.0.', 'bn1.': 'base.layer0.1.', 'layer': 'base.layer'}
    state_dict = {}
    for key, value in source.items():
        prefix = next((p for p in renames if key.startswith(p)), None)
        state_dict[renames[prefix] + key[len(prefix):] if prefix else key] = value
    return _load_and_save(DeepLabV2ResNet101(num_classes), state_dict, dst, 'resnet101', src)


CONVERTERS = {'vgg16': vgg16_to_largefov, 'resnet101': resnet101_to_deeplab}


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arch', required=True, choices=sorted(CONVERTERS))
    parser.add_argument('--src', required=True, help='torchvision ImageNet state dict (.pth)')
    parser.add_argument('--dst', required=True, help='output checkpoint')
    parser.add_argument('--num_classes', type=int, default=21, help='21 for VOC, 61 for COCO-60')
    return parser


def main(args):
    torch.manual_seed(0)  # reproducible fresh classifier
    CONVERTERS[args.arch](args.src, args.dst, num_classes=args.num_classes)


if __name__ == '__main__':
    main(get_args_parser().parse_args())
