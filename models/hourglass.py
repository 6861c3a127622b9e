"""Building blocks of the LPG generator's one-stack hourglass (CornerNet style).

Module and attribute names (`conv`, `bn`, `skip`, `up1`, `low1`, ...) are fixed by the keys
of the released LPG_Round1/2/3 checkpoints, so they must not be renamed.
"""
import torch
import torch.nn.functional as F
from torch import nn

# The hourglass halves the resolution 5 times after the stride-4 stem: 4 * 2**5.
LPG_STRIDE = 128

# Channel widths and residual-block counts of the hourglass levels of the release.
HOURGLASS_DIMS = (96, 96, 128, 128, 128, 192)
HOURGLASS_BLOCKS = (2, 2, 2, 2, 2, 4)


class ConvBNReLU(nn.Module):
    """k x k convolution -> BatchNorm (optional) -> ReLU.

    Without BN the convolution carries the bias, as in the release (`fm.0.0.conv.bias`).
    """

    def __init__(self, kernel_size: int, in_channels: int, out_channels: int, stride: int = 1, with_bn: bool = True):
        super().__init__()
        # Children named conv/bn/relu: fixed by the checkpoint keys (`pre.0.conv.weight`, `cnvs.0.bn.*`).
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=(kernel_size - 1) // 2, bias=not with_bn)
        self.bn = nn.BatchNorm2d(out_channels) if with_bn else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Residual(nn.Module):
    """Basic residual block: two 3x3 convs, 1x1 projection skip when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        # conv1/bn1/conv2/bn2/skip: names fixed by the checkpoint keys (`pre.1.skip.0.weight`, ...).
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.skip = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))
        else:
            self.skip = nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        # In-place add: `out` is a fresh BN output, so no copy is needed (autograd- and compile-safe).
        return self.relu(out.add_(self.skip(x)))


def _residual_stack(in_channels, out_channels, num_blocks, stride=1):
    """`num_blocks` residuals; the first one changes channels/stride (hourglass down path)."""
    blocks = [Residual(in_channels, out_channels, stride)]
    blocks += [Residual(out_channels, out_channels) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


def _residual_stack_reversed(in_channels, out_channels, num_blocks):
    """`num_blocks` residuals; the last one changes channels (hourglass up path)."""
    blocks = [Residual(in_channels, in_channels) for _ in range(num_blocks - 1)]
    blocks.append(Residual(in_channels, out_channels))
    return nn.Sequential(*blocks)


class HourglassLevel(nn.Module):
    """One level of the recursive hourglass.

    Output = up1(x) + upsample_x2(low3(low2(low1(x)))), where low1 halves the
    resolution with a stride-2 residual (there is no pooling layer) and low2 is
    the next level, or a plain residual stack at the innermost level.
    """

    def __init__(self, dims: tuple = HOURGLASS_DIMS, blocks: tuple = HOURGLASS_BLOCKS):
        super().__init__()
        levels = len(dims) - 1
        if levels < 1 or len(blocks) != len(dims):
            raise ValueError(f'hourglass needs >= 2 dims and one block count per dim, got {dims}, {blocks}')
        outer, inner = dims[0], dims[1]
        count = blocks[0]
        # up1/low1/low2/low3: names fixed by the checkpoint keys (`kps.0.low2.low2.up1.0...`).
        self.up1 = _residual_stack(outer, outer, count)
        self.low1 = _residual_stack(outer, inner, count, stride=2)
        if levels > 1:
            self.low2 = HourglassLevel(dims[1:], blocks[1:])
        else:
            self.low2 = _residual_stack(inner, inner, blocks[1])
        self.low3 = _residual_stack_reversed(inner, outer, count)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low3(self.low2(self.low1(x)))
        # Out of place: up1 ends in a ReLU whose output autograd keeps for the backward pass.
        return self.up1(x) + F.interpolate(low, scale_factor=2, mode='nearest')
