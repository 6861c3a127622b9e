"""DeepLab-V2 on ResNet-101 with multi-scale inputs (MSC), as in the LPG release.

Quirk of the release kept on purpose: the stem has **no max-pool**, so the output
stride is 4 instead of DeepLab-V2's usual 8 (65 -> 17). The released checkpoints
were trained that way, so adding the pool back would change their predictions.
"""
from functools import reduce

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck

RESNET101_BLOCKS = (3, 4, 23, 3)
ASPP_RATES = (6, 12, 18, 24)


def _make_layer(in_channels, planes, num_blocks, stride=1, dilation=1):
    """A torchvision ResNet stage; unlike torchvision's `replace_stride_with_dilation`,
    every block (the first one included) uses `dilation`, as the release does."""
    out_channels = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                   nn.BatchNorm2d(out_channels))
    blocks = [Bottleneck(in_channels, planes, stride, downsample, dilation=dilation)]
    blocks += [Bottleneck(out_channels, planes, dilation=dilation) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling of DeepLab-V2: four dilated 3x3 classifiers, summed."""

    def __init__(self, in_channels: int, num_classes: int, rates: tuple = ASPP_RATES):
        super().__init__()
        for i, rate in enumerate(rates):
            # c0..c3: names fixed by the checkpoint keys (`base.aspp.c0.weight`).
            self.add_module(f'c{i}', nn.Conv2d(in_channels, num_classes, 3, padding=rate, dilation=rate))
        for conv in self.children():
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reduce(torch.add, (conv(x) for conv in self.children()))


class DeepLabV2ResNet101Base(nn.Module):
    """Single-scale DeepLab-V2 ResNet-101: stem without max-pool, layer3/layer4 dilated 2/4, ASPP.

    Input B x 3 x H x W mean-subtracted BGR; output B x num_classes x ceil(H/4) x ceil(W/4).
    """

    def __init__(self, num_classes: int = 21):
        super().__init__()
        # layer0..layer4/aspp: names fixed by the checkpoint keys (`base.layer0.0.weight`, ...).
        self.layer0 = nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
                                    nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        self.layer1 = _make_layer(64, 64, RESNET101_BLOCKS[0])
        self.layer2 = _make_layer(256, 128, RESNET101_BLOCKS[1], stride=2)
        self.layer3 = _make_layer(512, 256, RESNET101_BLOCKS[2], dilation=2)
        self.layer4 = _make_layer(1024, 512, RESNET101_BLOCKS[3], dilation=4)
        self.aspp = ASPP(2048, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in (self.layer0, self.layer1, self.layer2, self.layer3, self.layer4, self.aspp):
            x = stage(x)
        return x


class DeepLabV2ResNet101(nn.Module):
    """Multi-scale DeepLab-V2 ResNet-101.

    The base runs on the input and on copies resized by `scales` (bilinear,
    align_corners=False); the small-scale logits are resized to the full-scale
    logit size and fused with an element-wise max.

    Returns, in training mode, the list [full, scale 0.5, scale 0.75, max] (each
    supervised against labels resized to its own size), in eval mode the max.

    BatchNorm: with `freeze_bn=True` (default, standard for DeepLab-V2 trained with
    batch 2, where batch statistics are useless) every BatchNorm of the base stays in
    eval mode even after `.train()`, so the ImageNet running statistics are used and
    never updated, and its affine parameters have requires_grad=False.
    `freeze_bn_statistics(False)` lets the BatchNorms follow train/eval mode again while
    their affine parameters stay frozen: what the release's training effectively did.
    """

    def __init__(self, num_classes: int = 21, scales: tuple = (0.5, 0.75), freeze_bn: bool = True):
        super().__init__()
        # `base`: name fixed by the checkpoint keys (`base.layer1.0.conv1.weight`, ...).
        self.base = DeepLabV2ResNet101Base(num_classes)
        self.scales = tuple(scales)
        self.bn_frozen = freeze_bn
        if freeze_bn:
            for module in self._batch_norms():
                for param in module.parameters():
                    param.requires_grad_(False)
            self.train(self.training)

    def _batch_norms(self):
        return [m for m in self.base.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def freeze_bn_statistics(self, frozen: bool = True) -> None:
        """Keep the base's BatchNorms in eval mode (frozen running statistics) or let them follow
        train/eval mode, so that training updates their running statistics."""
        self.bn_frozen = frozen
        return self.train(self.training)

    def train(self, mode: bool = True) -> 'DeepLabV2ResNet101':
        """Sets train/eval mode, keeping the base's BatchNorms in eval mode when frozen."""
        super().train(mode)
        if self.bn_frozen:
            for module in self._batch_norms():
                module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor | list:
        logits = self.base(x)
        size = logits.shape[-2:]
        pyramid = [self.base(F.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=False))
                   for scale in self.scales]
        resized = [F.interpolate(y, size=size, mode='bilinear', align_corners=False) for y in pyramid]
        logits_max = reduce(torch.maximum, resized, logits)
        if self.training:
            return [logits, *pyramid, logits_max]
        return logits_max
