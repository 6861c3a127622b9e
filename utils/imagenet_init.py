"""ImageNet initialisation of the DeepLab backbones from torchvision weight files.

Nothing is downloaded: pass the torchvision ImageNet state dict you already have
(e.g. vgg16-397923af.pth, resnet101-63fe2227.pth from ~/.cache/torch/hub/checkpoints).

    python utils/imagenet_init.py --arch vgg16 --src vgg16-397923af.pth --dst PretrainedModel/vgg16_largefov_init.pth
    python utils/imagenet_init.py --arch resnet101 --src resnet101-63fe2227.pth --dst PretrainedModel/resnet101_init.pth

The first layer is rewritten for this project's input (BGR 0-255 minus the mean) in place of torchvision's (RGB
in [0, 1], normalised). --match_release copies it unchanged instead, as the release loads torchvision's
resnet101-5d3b4d8f.pth into its ResNet-101 base and feeds it BGR 0-255 minus the mean all the same:
    python utils/imagenet_init.py --arch resnet101 --src resnet101-5d3b4d8f.pth --dst resnet101_release_init.pth \
        --match_release

The output holds {'model': state_dict, 'arch', 'source'} and loads with
utils.engine.checkpoint.load_weights; the classifier (VGG fc8, ResNet ASPP) is freshly initialised.
The conversion of each backbone is its registry entry's `imagenet_converter` (models/imagenet.py).
"""
import argparse
import os
import sys

if __name__ == '__main__' and not __package__:
    # Run as a script: make the project root importable (models/, utils/).
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from models.backbones import BACKBONES, get_backbone
from utils.engine.checkpoint import load_checkpoint, save_checkpoint, unwrap_state_dict
from utils.engine.errors import InputError
from utils.engine.runtime import run_script


def convert(arch, src, dst, num_classes=21, fold_input=True):
    """Converts the torchvision ImageNet file `src` into an initialisation of backbone `arch` at `dst`
    (fold_input=False: the first layer as it is, the release's ResNet-101 start).

    Loads non-strictly (the classifier stays freshly initialised), reports what was not loaded, writes the
    result, and returns (missing_keys, unexpected_keys)."""
    spec = get_backbone(arch)
    if spec.imagenet_converter is None:
        raise InputError(f'backbone {arch!r} has no ImageNet converter')
    state_dict = spec.imagenet_converter(unwrap_state_dict(load_checkpoint(src), src), where=src, fold_input=fold_input)
    model = spec.build(num_classes)
    result = model.load_state_dict(state_dict, strict=False)
    save_checkpoint(dst, model=model.state_dict(), arch=arch, source=os.path.abspath(src), input_folded=fold_input)
    print(f'{arch}: wrote {dst}')
    print(f'  not in {os.path.basename(src)}, freshly initialised ({len(result.missing_keys)}): '
          f'{", ".join(result.missing_keys)}')
    print(f'  in {os.path.basename(src)} but not used ({len(result.unexpected_keys)}): '
          f'{", ".join(result.unexpected_keys)}')
    return list(result.missing_keys), list(result.unexpected_keys)


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arch', required=True,
                        choices=sorted(name for name, spec in BACKBONES.items() if spec.imagenet_converter))
    parser.add_argument('--src', required=True, help='torchvision ImageNet state dict (.pth)')
    parser.add_argument('--dst', required=True, help='output checkpoint')
    parser.add_argument('--num_classes', type=int, default=21, help='21 for VOC, 61 for COCO-60')
    parser.add_argument('--match_release', action='store_true',
                        help="copy the first layer unchanged, without folding torchvision's RGB [0, 1] input "
                        "normalisation into it: the release's ResNet-101 start (its VGG16 started from a "
                        'Caffe-converted DeepLab file instead)')
    return parser


def main(args):
    torch.manual_seed(0)  # reproducible fresh classifier
    convert(args.arch, args.src, args.dst, num_classes=args.num_classes, fold_input=not args.match_release)


if __name__ == '__main__':
    run_script(main, get_args_parser())
