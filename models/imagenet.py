"""ImageNet initialisation: torchvision's ImageNet weights rewritten as the DeepLab backbones' keys.

Each converter takes a torchvision state dict and returns a (partial) state dict of the backbone; the
classifier (VGG16 fc8, the ResNet ASPP) is left out and stays freshly initialised. `where` names the
source in error messages.
"""

# torchvision `features` indices of the 13 VGG16 convs; DeepLabLargeFOV keeps the same indices.
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def require_keys(state_dict, required, where):
    absent = [k for k in required if k not in state_dict]
    if absent:
        raise ValueError(f'{where} is not a torchvision ImageNet state dict of the expected network: '
                         f'missing {", ".join(absent[:5])}')


def vgg16_to_largefov(source, where='the source'):
    """torchvision VGG16 -> DeepLabLargeFOV.

    The 13 convs are copied. fc6/fc7 are shrunk from 4096 to 1024 channels by decimation, the DeepLab-V1
    recipe: fc6 (4096 x 25088) is viewed as 4096 x 512 x 7 x 7 and keeps every 4th filter and the spatial
    taps 0, 3, 6 (a 3x3 kernel that, dilated by 12, covers a similar field of view); fc7 keeps every 4th
    row and column. ImageNet's fc8 (`classifier.6.*`) is passed through so that the non-strict load reports
    it as unused.
    """
    require_keys(source, ['classifier.0.weight', 'classifier.3.weight']
                 + [f'features.{i}.weight' for i in VGG16_CONV_INDICES], where)
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
    state_dict.update({k: v for k, v in source.items() if k.startswith('classifier.6.')})
    return state_dict


def resnet101_to_deeplab(source, where='the source'):
    """torchvision ResNet-101 -> DeepLabV2ResNet101: conv1/bn1 -> base.layer0.0/1, layerN -> base.layerN.
    ImageNet's classifier (fc.*) is passed through, so the non-strict load reports it as unused."""
    require_keys(source, ['conv1.weight', 'bn1.weight', 'layer3.22.conv3.weight'], where)
    renames = {'conv1.': 'base.layer0.0.', 'bn1.': 'base.layer0.1.', 'layer': 'base.layer'}
    state_dict = {}
    for key, value in source.items():
        prefix = next((p for p in renames if key.startswith(p)), None)
        state_dict[renames[prefix] + key[len(prefix):] if prefix else key] = value
    return state_dict
