"""The building blocks: conv unit, Inception module, auxiliary head.

Attribute names (`conv`, `bn`, `branch1`..`branch4`, `fc1`, `fc2`) follow
torchvision's `googlenet`, so that the `bn` variant's state_dict is
interchangeable with it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from googlenet.arch.table import AUX, LRN_ALPHA, LRN_BETA, LRN_K, LRN_SIZE, InceptionLayer, Variant


class ConvUnit(nn.Module):
    """Convolution -> (BatchNorm) -> ReLU. "All convolutions ... use ReLU" (Table 1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, variant: Variant,
                 stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride,
                              padding=kernel // 2, bias=not variant.batch_norm)
        self.bn = nn.BatchNorm2d(out_channels, eps=variant.bn_eps) if variant.batch_norm else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x, inplace=True)


class Inception(nn.Module):
    """Figure 2(b): four branches concatenated along channels."""

    def __init__(self, layer: InceptionLayer, variant: Variant) -> None:
        super().__init__()
        row, c_in = layer.row, layer.in_channels
        self.branch1 = ConvUnit(c_in, row.c1x1, 1, variant)
        self.branch2 = nn.Sequential(
            ConvUnit(c_in, row.c3x3_reduce, 1, variant),
            ConvUnit(row.c3x3_reduce, row.c3x3, 3, variant),
        )
        self.branch3 = nn.Sequential(
            ConvUnit(c_in, row.c5x5_reduce, 1, variant),
            ConvUnit(row.c5x5_reduce, row.c5x5, layer.branch3_kernel, variant),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
            ConvUnit(c_in, row.pool_proj, 1, variant),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class AuxHead(nn.Module):
    """Sec. 5: avg pool 5x5/3 -> 1x1 conv 128 -> FC 1024 -> dropout 70% -> linear.

    The `paper` pool is exact at 224 (14x14 -> 4x4); at other input sizes the
    result is pooled adaptively to 4x4 so that fc1 keeps its 2048 inputs.
    torchvision (variant `bn`) pools adaptively to 4x4 at every size.
    """

    def __init__(self, in_channels: int, num_classes: int, variant: Variant) -> None:
        super().__init__()
        self.paper_pool = variant.aux_pool == "paper"
        self.conv = ConvUnit(in_channels, AUX.conv_channels, 1, variant)
        self.fc1 = nn.Linear(AUX.fc_in_features, AUX.fc_units)
        self.fc2 = nn.Linear(AUX.fc_units, num_classes)
        self.dropout = nn.Dropout(p=variant.aux_dropout)

    def pool(self, x: Tensor) -> Tensor:
        if self.paper_pool and min(x.shape[-2:]) >= AUX.pool_kernel:
            x = F.avg_pool2d(x, AUX.pool_kernel, AUX.pool_stride, ceil_mode=True)
        return F.adaptive_avg_pool2d(x, AUX.pooled_size)  # identity when already 4x4

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(self.pool(x))  # N x 128 x 4 x 4
        x = F.relu(self.fc1(torch.flatten(x, 1)), inplace=True)  # N x 1024
        return self.fc2(self.dropout(x))  # N x num_classes


def local_response_norm() -> nn.LocalResponseNorm:
    """Figure 3's LocalRespNorm (size 5, alpha 1e-4, beta 0.75, as in BVLC's replication).

    PyTorch, like Caffe, divides alpha by the window size.
    """
    return nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA, beta=LRN_BETA, k=LRN_K)
