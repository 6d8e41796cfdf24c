"""Wide ResNets: WRN-34-10 (TRADES / RobustBench) and Madry et al.'s WRN-32-10.

Both have 5 residual units per stage and widths 160/320/640. WRN-34-10 follows the TRADES code (the
first stage's units counted with an extra ``sub_block1`` there, which we do not keep: it is unused in the
forward pass). Madry's TensorFlow model (``madry/cifar10_challenge``) uses leaky ReLU (slope 0.1) and is
called WRN-32-10 in the Generalist paper; ``wrn32_10`` builds that variant.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from .layers import Normalize, default_norm
from .registry import register_model


class WideBlock(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int, slope: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.equal = in_planes == out_planes
        self.shortcut = None if self.equal else nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)
        self.slope = slope

    def forward(self, x):
        o = F.leaky_relu(self.bn1(x), self.slope)
        y = self.conv1(o)
        y = self.conv2(F.leaky_relu(self.bn2(y), self.slope))
        return y + (x if self.equal else self.shortcut(o))


class WideResNet(nn.Module):
    def __init__(self, depth=34, widen_factor=10, num_classes=10, in_channels=3, mean=None, std=None,
                 units_per_stage=None, slope: float = 0.0):
        super().__init__()
        n = units_per_stage or (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.normalize = Normalize(*default_norm(in_channels, mean, std))
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        blocks = []
        for stage, stride in enumerate((1, 2, 2)):
            for i in range(n):
                blocks.append(WideBlock(widths[stage] if i == 0 else widths[stage + 1], widths[stage + 1],
                                        stride if i == 0 else 1, slope))
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        self.slope = slope
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        out = self.blocks(self.conv1(self.normalize(x)))
        out = F.leaky_relu(self.bn(out), self.slope)
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model(title="WideResNet-34-10")
def wrn34_10(num_classes: int = 10, in_channels: int = 3, mean=None, std=None) -> WideResNet:
    return WideResNet(34, 10, num_classes, in_channels, mean, std)


@register_model(title="WideResNet-32-10")
def wrn32_10(num_classes: int = 10, in_channels: int = 3, mean=None, std=None) -> WideResNet:
    return WideResNet(32, 10, num_classes, in_channels, mean, std, units_per_stage=5, slope=0.1)
