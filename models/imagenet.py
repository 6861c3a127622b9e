"""ImageNet initialisation: torchvision's ImageNet weights rewritten as the DeepLab backbones' keys.

Each converter takes a torchvision state dict and returns a (partial) state dict of the backbone; the
classifier (VGG16 fc8, the ResNet ASPP) is left out and stays freshly initialised. `where` names the
source in error messages; `fold_input=False` copies the first layer unchanged, as the release loads
torchvision's ResNet-101 file into its base.

The input conventions differ: torchvision's networks read RGB in [0, 1] normalised by
IMAGENET_MEAN_RGB / IMAGENET_STD_RGB, these backbones read BGR in 0-255 minus MEAN_BGR (the convention
of the released checkpoints). The converters fold the difference into the first layer, so that it gives
the same activations as torchvision's on the normalised image (away from the zero-padding border, where
the two conventions pad with different colours).
"""
import torch

from datasets.constants import MEAN_BGR
from utils.engine.errors import InputError

# torchvision `features` indices of the 13 VGG16 convs; DeepLabLargeFOV keeps the same indices.
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


def fold_input_normalisation(weight: torch.Tensor) -> tuple:
    """First-layer weights for RGB [0, 1] normalised input -> (weights for BGR 0-255 minus MEAN_BGR, shift).

    With x_rgb = (bgr + MEAN_BGR)[::-1] / 255 and torchvision's input (x_rgb - mean) / std, a filter W gives
    W' * (bgr - MEAN_BGR) + shift, where W' is W with its input channels reversed and divided by 255 * std,
    and shift[o] = sum over c, taps of W[o, c] * (MEAN_BGR[::-1][c] / 255 - mean[c]) / std[c]. The shift
    belongs in the layer's bias, or, before a BatchNorm, is subtracted from its running mean."""
    std = torch.tensor(IMAGENET_STD_RGB, dtype=weight.dtype)
    mean = torch.tensor(IMAGENET_MEAN_RGB, dtype=weight.dtype)
    mean_rgb_255 = torch.tensor(MEAN_BGR[::-1].copy(), dtype=weight.dtype)
    folded = (weight / (255.0 * std).view(1, 3, 1, 1)).flip(1)
    offset = (mean_rgb_255 / 255.0 - mean) / std
    shift = (weight.sum(dim=(2, 3)) * offset).sum(dim=1)
    return folded.contiguous(), shift


def require_keys(state_dict: dict, required: list, where: str) -> None:
    absent = [k for k in required if k not in state_dict]
    if absent:
        raise InputError(f'{where} is not a torchvision ImageNet state dict of the expected network: '
                         f'missing {", ".join(absent[:5])}')


def vgg16_to_largefov(source: dict, where: str = 'the source', fold_input: bool = True) -> dict:
    """torchvision VGG16 -> DeepLabLargeFOV.

    The 13 convs are copied, conv1_1 with the input normalisation folded in. fc6/fc7 are shrunk from 4096 to
    1024 channels by decimation, the DeepLab-V1 recipe: fc6 (4096 x 25088) is viewed as 4096 x 512 x 7 x 7
    and keeps every 4th filter and the spatial taps 0, 3, 6 (a 3x3 kernel that, dilated by 12, covers a
    similar field of view); fc7 keeps every 4th row and column. ImageNet's fc8 (`classifier.6.*`) is passed
    through so that the non-strict load reports it as unused.
    """
    require_keys(source, ['classifier.0.weight', 'classifier.3.weight']
                 + [f'features.{i}.weight' for i in VGG16_CONV_INDICES], where)
    state_dict = {}
    for i in VGG16_CONV_INDICES:
        state_dict[f'features.{i}.weight'] = source[f'features.{i}.weight']
        state_dict[f'features.{i}.bias'] = source[f'features.{i}.bias']
    if fold_input:
        first, shift = fold_input_normalisation(source['features.0.weight'])
        state_dict['features.0.weight'] = first
        state_dict['features.0.bias'] = source['features.0.bias'] + shift
    fc6 = source['classifier.0.weight'].reshape(4096, 512, 7, 7)
    state_dict['features.32.weight'] = fc6[::4][:, :, ::3, ::3].contiguous()
    state_dict['features.32.bias'] = source['classifier.0.bias'][::4].contiguous()
    fc7 = source['classifier.3.weight']
    state_dict['features.35.weight'] = fc7[::4, ::4].reshape(1024, 1024, 1, 1).contiguous()
    state_dict['features.35.bias'] = source['classifier.3.bias'][::4].contiguous()
    state_dict.update({k: v for k, v in source.items() if k.startswith('classifier.6.')})
    return state_dict


def resnet101_to_deeplab(source: dict, where: str = 'the source', fold_input: bool = True) -> dict:
    """torchvision ResNet-101 -> DeepLabV2ResNet101: conv1/bn1 -> base.layer0.0/1, layerN -> base.layerN.
    conv1 has no bias, so the input normalisation's shift moves into bn1's running mean.
    ImageNet's classifier (fc.*) is passed through, so the non-strict load reports it as unused."""
    require_keys(source, ['conv1.weight', 'bn1.weight', 'layer3.22.conv3.weight'], where)
    renames = {'conv1.': 'base.layer0.0.', 'bn1.': 'base.layer0.1.', 'layer': 'base.layer'}
    state_dict = {}
    for key, value in source.items():
        prefix = next((p for p in renames if key.startswith(p)), None)
        state_dict[renames[prefix] + key[len(prefix):] if prefix else key] = value
    if fold_input:
        first, shift = fold_input_normalisation(source['conv1.weight'])
        state_dict['base.layer0.0.weight'] = first
        state_dict['base.layer0.1.running_mean'] = source['bn1.running_mean'] - shift
    return state_dict
