"""The backbone registry: one entry per segmentation backbone, holding everything the scripts need to know.

A script never asks "is this VGG16?": it reads the entry of `--model_type`. Adding a backbone means
writing its network and registering one `BackboneSpec`; every script's `--model_type` choices, training
schedule, learning-rate groups, test padding, CRF parameters and ImageNet converter follow from it.
"""
from dataclasses import dataclass
from typing import Callable, Optional

from torch import nn

from .deeplab_resnet import DeepLabV2ResNet101
from .deeplab_vgg import DeepLabLargeFOV
from .imagenet import resnet101_to_deeplab, vgg16_to_largefov


@dataclass(frozen=True)
class Schedule:
    """main.py's defaults: base lr, images per step, accumulated steps per update, updates."""
    lr: float
    batch_size: int
    iter_size: int
    num_iterations: int


@dataclass(frozen=True)
class CRFParams:
    """DenseCRF settings: iterations, Gaussian kernel (pos_w, pos_xy_std), bilateral kernel (bi_w, bi_xy_std,
    bi_rgb_std). The keyword names are those of `utils.crf.DenseCRF`."""
    iter_max: int
    pos_w: float
    pos_xy_std: float
    bi_w: float
    bi_xy_std: float
    bi_rgb_std: float


@dataclass(frozen=True)
class BackboneSpec:
    """What differs between segmentation backbones.

    build: num_classes -> the network (input mean-subtracted BGR, output logits or, in training mode,
        a list of logits each trained against labels resized to its size).
    schedule: main.py's default optimisation schedule.
    is_classifier: parameter name -> whether it belongs to the freshly initialised classifier, which
        learns 10x (weights) / 20x (biases) faster.
    bias_lr_mult: learning-rate multiplier of the other biases.
    crf_params: DenseCRF parameters used by `test.py --type crf`.
    pad_to_test_size: test.py pads the input (bottom/right) to --test_size before the forward pass.
    imagenet_converter: torchvision ImageNet state dict -> this network's state dict (utils/imagenet_init.py);
        None when there is none.
    """
    name: str
    build: Callable[[int], nn.Module]
    schedule: Schedule
    is_classifier: Callable[[str], bool]
    bias_lr_mult: float
    crf_params: CRFParams
    pad_to_test_size: bool
    imagenet_converter: Optional[Callable] = None
    description: str = ''

    def param_groups(self, model, lr, weight_decay):
        """SGD groups of the DeepLab convention: classifier weights 10x, classifier biases 20x, other biases
        `bias_lr_mult`; no weight decay on biases. Frozen parameters (ResNet batch norm) are left out.
        Each group carries `initial_lr` for the poly schedule."""
        groups = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            is_bias = name.endswith('bias')
            if self.is_classifier(name):
                key = (20.0, 0.0) if is_bias else (10.0, weight_decay)
            elif is_bias:
                key = (self.bias_lr_mult, 0.0)
            else:
                key = (1.0, weight_decay)
            groups.setdefault(key, []).append(param)
        return [dict(params=params, lr=lr * scale, initial_lr=lr * scale, weight_decay=decay)
                for (scale, decay), params in groups.items()]


BACKBONES = {}


def register_backbone(spec):
    """Add a backbone to every script's `--model_type` choices. Returns the spec."""
    if spec.name in BACKBONES:
        raise ValueError(f'a backbone named {spec.name!r} is already registered')
    BACKBONES[spec.name] = spec
    return spec


def backbone_names():
    return sorted(BACKBONES)


def get_backbone(name):
    """The registry entry of `--model_type name`."""
    if name not in BACKBONES:
        raise ValueError(f'unknown model_type {name!r}: expected one of {backbone_names()}')
    return BACKBONES[name]


def build_backbone(name, num_classes):
    """Segmentation network `name` with `num_classes` outputs (21 for VOC, 61 for COCO-60)."""
    return get_backbone(name).build(num_classes)


register_backbone(BackboneSpec(
    name='vgg16',
    description='DeepLab-V1 LargeFOV on VGG16 (output stride 8)',
    build=lambda num_classes: DeepLabLargeFOV(num_classes=num_classes),
    schedule=Schedule(lr=1e-3, batch_size=30, iter_size=1, num_iterations=20000),
    is_classifier=lambda name: name.startswith('features.38.'),  # fc8
    bias_lr_mult=2.0,
    crf_params=CRFParams(iter_max=10, pos_w=3, pos_xy_std=3, bi_w=5, bi_xy_std=140, bi_rgb_std=5),
    # The release evaluates VGG16 on images padded to 513 x 513.
    pad_to_test_size=True,
    imagenet_converter=vgg16_to_largefov,
))

register_backbone(BackboneSpec(
    name='resnet101',
    description='multi-scale DeepLab-V2 on ResNet-101 (output stride 4, as released)',
    build=lambda num_classes: DeepLabV2ResNet101(num_classes=num_classes),
    schedule=Schedule(lr=2.5e-4, batch_size=2, iter_size=5, num_iterations=40000),
    is_classifier=lambda name: '.aspp.' in f'.{name}',
    bias_lr_mult=1.0,
    crf_params=CRFParams(iter_max=10, pos_w=3, pos_xy_std=1, bi_w=4, bi_xy_std=67, bi_rgb_std=3),
    pad_to_test_size=False,
    imagenet_converter=resnet101_to_deeplab,
))
