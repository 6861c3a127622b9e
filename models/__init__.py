"""Networks of LPG: the DeepLab segmentation backbones and the LPG pseudo-mask generator.

Every network here loads the original release's checkpoints with `strict=True`
(see utils/checkpoint.py `load_weights`), which is why some attribute names
(`features`, `base`, `aspp`, `pre`, `kps`, `cnvs`, `fm`) are fixed.
"""
from .deeplab_resnet import DeepLabV2ResNet101, DeepLabV2ResNet101Base
from .deeplab_vgg import DeepLabLargeFOV
from .hourglass import LPG_STRIDE, LPGNet

BACKBONES = {'vgg16': DeepLabLargeFOV, 'resnet101': DeepLabV2ResNet101}


def build_backbone(model_type, num_classes):
    """Segmentation backbone for `--model_type`: 'vgg16' (DeepLab-V1 LargeFOV) or
    'resnet101' (multi-scale DeepLab-V2); 21 classes for VOC, 61 for COCO-60."""
    if model_type not in BACKBONES:
        raise ValueError(f'unknown model_type {model_type!r}: expected one of {sorted(BACKBONES)}')
    return BACKBONES[model_type](num_classes=num_classes)


__all__ = ['BACKBONES', 'DeepLabLargeFOV', 'DeepLabV2ResNet101', 'DeepLabV2ResNet101Base',
           'LPGNet', 'LPG_STRIDE', 'build_backbone']
