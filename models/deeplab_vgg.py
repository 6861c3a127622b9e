"""DeepLab-V1 LargeFOV on VGG16 (output stride 8)."""
import torch
from torch import nn


def _conv_relu(in_channels, out_channels, dilation=1):
    return [nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True)]


class DeepLabLargeFOV(nn.Module):
    """DeepLab-V1 LargeFOV: VGG16 with the last two poolings at stride 1, dilated conv5
    (dilation 2) and fc6 (3x3, dilation 12), fc6/fc7 reduced to 1024 channels.

    Input: B x 3 x H x W mean-subtracted BGR. Output: B x num_classes x ceil(H/8) x ceil(W/8)
    logits (65 -> 9, 321 -> 41, 513 -> 65).
    """

    def __init__(self, num_classes: int = 21):
        super().__init__()
        layers = []
        layers += _conv_relu(3, 64) + _conv_relu(64, 64)                      # 0-3
        layers += [nn.MaxPool2d(3, stride=2, padding=1)]                       # 4
        layers += _conv_relu(64, 128) + _conv_relu(128, 128)                   # 5-8
        layers += [nn.MaxPool2d(3, stride=2, padding=1)]                       # 9
        layers += _conv_relu(128, 256) + _conv_relu(256, 256) + _conv_relu(256, 256)  # 10-15
        layers += [nn.MaxPool2d(3, stride=2, padding=1)]                       # 16
        layers += _conv_relu(256, 512) + _conv_relu(512, 512) + _conv_relu(512, 512)  # 17-22
        layers += [nn.MaxPool2d(3, stride=1, padding=1)]                       # 23
        layers += _conv_relu(512, 512, 2) + _conv_relu(512, 512, 2) + _conv_relu(512, 512, 2)  # 24-29
        layers += [nn.MaxPool2d(3, stride=1, padding=1),                       # 30
                   nn.AvgPool2d(3, stride=1, padding=1)]                       # 31
        layers += [nn.Conv2d(512, 1024, 3, padding=12, dilation=12),           # 32 fc6
                   nn.ReLU(inplace=True), nn.Dropout2d(0.5),
                   nn.Conv2d(1024, 1024, 1),                                   # 35 fc7
                   nn.ReLU(inplace=True), nn.Dropout2d(0.5),
                   nn.Conv2d(1024, num_classes, 1)]                            # 38 fc8
        # One flat Sequential named `features`: the layer indices are the released checkpoint keys.
        self.features = nn.Sequential(*layers)
        nn.init.normal_(self.fc8.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc8.bias)

    @property
    def fc8(self):
        """The classifier layer (fresh per dataset; trained with 10x / 20x learning rate)."""
        return self.features[38]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
