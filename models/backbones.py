"""The backbone registry: one entry per segmentation backbone, holding everything the scripts need to know.

A script never asks "is this VGG16?": it reads the entry of `--model_type`. Adding a backbone means
writing its network and registering one `BackboneSpec`; every script's `--model_type` choices, training
schedule, learning-rate groups, test padding, CRF parameters and ImageNet converter follow from it.
"""
from dataclasses import dataclass
from typing import Callable, Optional

from torch import nn

from utils.engine.errors import InputError
from utils.engine.registry import Registry

from .deeplab_resnet import DeepLabV2ResNet101
from .deeplab_vgg import DeepLabLargeFOV
from .imagenet import resnet101_to_deeplab, vgg16_to_largefov


@dataclass(frozen=True)
class Schedule:
    """main.py's defaults: base lr, images per step, accumulated steps per update, updates, and the snapshot
    interval (the release's: VGG16 every 1000 iterations, ResNet-101 every 500)."""
    lr: float
    batch_size: int
    iter_size: int
    num_iterations: int
    num_save_model: int


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
    release_setup: (model, lr, weight_decay) -> SGD groups: what the release's main.py effectively trained
        (`main.py --match_release`); it may also change the model's training mode. None for backbones the
        release did not have.
    """
    name: str
    build: Callable[[int], nn.Module]
    schedule: Schedule
    is_classifier: Callable[[str], bool]
    bias_lr_mult: float
    crf_params: CRFParams
    pad_to_test_size: bool
    imagenet_converter: Optional[Callable] = None
    release_setup: Optional[Callable] = None
    description: str = ''

    def training_setup(self, model: nn.Module, lr: float, weight_decay: float, match_release: bool = False) -> list:
        """The SGD parameter groups of `model` (each with `initial_lr` for the poly schedule).

        Default, the DeepLab convention the paper describes: classifier weights 10x, classifier biases 20x,
        other biases `bias_lr_mult`, no weight decay on biases; frozen parameters (ResNet batch norm) left out.
        match_release: the groups (and batch-norm mode) the release's code really produced."""
        if not match_release:
            return sgd_groups(model, lr, weight_decay, self.is_classifier, self.bias_lr_mult)
        if self.release_setup is None:
            raise InputError(f'--match_release: backbone {self.name!r} is not part of the original release')
        return self.release_setup(model, lr, weight_decay)

    def scratch_init(self, model: nn.Module, scheme: str) -> nn.Module:
        """Re-initialise `model` for training from random weights (main.py --from_scratch).

        pytorch: keep PyTorch's default initialisation (uniform, scaled for leaky ReLU with a = sqrt(5)): in the
            deep plain VGG16 stack the activations shrink layer after layer and training from it barely moves.
        kaiming: every convolution Kaiming-normal (fan_out, ReLU) with zero bias, as torchvision initialises
            VGG and ResNet before ImageNet training; the classifier (`is_classifier`) N(0, 0.01) with zero bias,
            as the release initialises fc8; batch norm as built (weight 1, bias 0)."""
        if scheme not in SCRATCH_INITS:
            raise InputError(f'unknown from-scratch initialisation {scheme!r}: expected one of {SCRATCH_INITS}')
        if scheme == 'pytorch':
            return model
        for name, module in model.named_modules():
            if not isinstance(module, nn.Conv2d):
                continue
            if self.is_classifier(f'{name}.weight'):
                nn.init.normal_(module.weight, 0.0, 0.01)
            else:
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        return model


SCRATCH_INITS = ('kaiming', 'pytorch')


def sgd_groups(model: nn.Module, lr: float, weight_decay: float, is_classifier: Callable[[str], bool],
               bias_lr_mult: float, keep: Callable[[str], bool] = lambda name: True) -> list:
    """Trainable parameters (those `keep` accepts) grouped by (lr multiplier, weight decay)."""
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad or not keep(name):
            continue
        is_bias = name.endswith('bias')
        if is_classifier(name):
            key = (20.0, 0.0) if is_bias else (10.0, weight_decay)
        elif is_bias:
            key = (bias_lr_mult, 0.0)
        else:
            key = (1.0, weight_decay)
        groups.setdefault(key, []).append(param)
    return [dict(params=params, lr=lr * scale, initial_lr=lr * scale, weight_decay=decay)
            for (scale, decay), params in groups.items()]


def _is_vgg16_fc8(name):
    return name.startswith('features.38.')


def _is_aspp(name):
    return '.aspp.' in f'.{name}'


def _vgg16_release_setup(model, lr, weight_decay):
    """The release named its 10x/20x groups after wrapping the model in DataParallel, so `features.38`
    matched nothing (`module.features.38...`): fc8 trains like every other layer, weights 1x with weight
    decay, biases 2x without."""
    return sgd_groups(model, lr, weight_decay, is_classifier=lambda name: False, bias_lr_mult=2.0)


def _resnet101_release_setup(model, lr, weight_decay):
    """The release's ResNet-101 groups: backbone convs 1x, ASPP biases 20x; the ASPP weights matched no
    group and never changed, nor did the batch-norm affine parameters. Its `model.train()` left batch norm
    in train mode (the freeze was commented out), so the running statistics updated from batches of 2."""
    model.freeze_bn_statistics(False)
    return sgd_groups(model, lr, weight_decay, is_classifier=_is_aspp, bias_lr_mult=1.0,
                      keep=lambda name: not (_is_aspp(name) and name.endswith('weight')))


BACKBONES = Registry('backbone', 'model_type', ordered=True)


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone to every script's `--model_type` choices. Returns the spec."""
    return BACKBONES.register(spec)


def backbone_names() -> list:
    return BACKBONES.names()


def get_backbone(name: str) -> BackboneSpec:
    """The registry entry of `--model_type name`."""
    return BACKBONES.entry(name)


def build_backbone(name: str, num_classes: int) -> nn.Module:
    """Segmentation network `name` with `num_classes` outputs (21 for VOC, 61 for COCO-60)."""
    return get_backbone(name).build(num_classes)


register_backbone(BackboneSpec(
    name='vgg16',
    description='DeepLab-V1 LargeFOV on VGG16 (output stride 8)',
    build=lambda num_classes: DeepLabLargeFOV(num_classes=num_classes),
    schedule=Schedule(lr=1e-3, batch_size=30, iter_size=1, num_iterations=20000, num_save_model=1000),
    is_classifier=_is_vgg16_fc8,
    bias_lr_mult=2.0,
    crf_params=CRFParams(iter_max=10, pos_w=3, pos_xy_std=3, bi_w=5, bi_xy_std=140, bi_rgb_std=5),
    # The release evaluates VGG16 on images padded to 513 x 513.
    pad_to_test_size=True,
    imagenet_converter=vgg16_to_largefov,
    release_setup=_vgg16_release_setup,
))

register_backbone(BackboneSpec(
    name='resnet101',
    description='multi-scale DeepLab-V2 on ResNet-101 (output stride 4, as released)',
    build=lambda num_classes: DeepLabV2ResNet101(num_classes=num_classes),
    schedule=Schedule(lr=2.5e-4, batch_size=2, iter_size=5, num_iterations=40000, num_save_model=500),
    is_classifier=_is_aspp,
    bias_lr_mult=1.0,
    crf_params=CRFParams(iter_max=10, pos_w=3, pos_xy_std=1, bi_w=4, bi_xy_std=67, bi_rgb_std=3),
    pad_to_test_size=False,
    imagenet_converter=resnet101_to_deeplab,
    release_setup=_resnet101_release_setup,
))
