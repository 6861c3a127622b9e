"""Networks of LPG: the DeepLab segmentation backbones (and their registry) and the LPG generator.

Every network here loads the original release's checkpoints with `strict=True`
(utils/engine/checkpoint.py `load_weights`), which is why some attribute names
(`features`, `base`, `aspp`, `pre`, `kps`, `cnvs`, `fm`) are fixed.
"""
from .backbones import BACKBONES, BackboneSpec, backbone_names, build_backbone, get_backbone, register_backbone
from .deeplab_resnet import DeepLabV2ResNet101, DeepLabV2ResNet101Base
from .deeplab_vgg import DeepLabLargeFOV
from .hourglass import LPG_STRIDE
from .lpg import LPGNet, lpg_in_channels

__all__ = ['BACKBONES', 'BackboneSpec', 'DeepLabLargeFOV', 'DeepLabV2ResNet101', 'DeepLabV2ResNet101Base',
           'LPGNet', 'LPG_STRIDE', 'backbone_names', 'build_backbone', 'get_backbone', 'lpg_in_channels',
           'register_backbone']
