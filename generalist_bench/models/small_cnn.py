"""TRADES' SmallCNN for 28×28 inputs (Zhang et al. 2019, ``models/small_cnn.py``): 4 conv + 3 FC."""

from __future__ import annotations

import torch.nn as nn

from .layers import Normalize, default_norm
from .registry import register_model


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, mean=None, std=None, drop: float = 0.5,
                 input_size: int = 28):
        super().__init__()
        side = ((input_size - 4) // 2 - 4) // 2
        self.normalize = Normalize(*default_norm(in_channels, mean, std))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(),
            nn.Conv2d(32, 32, 3), nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(32, 64, 3), nn.ReLU(),
            nn.Conv2d(64, 64, 3), nn.ReLU(),
            nn.MaxPool2d(2, 2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * side * side, 200), nn.ReLU(), nn.Dropout(drop),
            nn.Linear(200, 200), nn.ReLU(),
            nn.Linear(200, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.classifier[-1].weight)
        nn.init.zeros_(self.classifier[-1].bias)

    def forward(self, x):
        return self.classifier(self.features(self.normalize(x)))


@register_model(title="SmallCNN")
def small_cnn(num_classes: int = 10, in_channels: int = 1, mean=None, std=None, input_size: int = 28,
              **kw) -> SmallCNN:
    return SmallCNN(num_classes=num_classes, in_channels=in_channels, mean=mean, std=std, input_size=input_size, **kw)
