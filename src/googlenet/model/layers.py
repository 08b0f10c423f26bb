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
    return LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA, beta=LRN_BETA, k=LRN_K)


class LocalResponseNorm(nn.LocalResponseNorm):
    """What nn.LocalResponseNorm computes, x / (k + alpha * mean of x^2 over a window of
    channels)^beta, in float32 at least, with a backward of its own when training.

    - float32 under bf16 autocast: with k = 1 and alpha = 1e-4, it is 1 plus a
      few thousandths, below bf16's resolution near 1 (1/128), where LRN would be a no-op.
    - speed: the window is summed with shifted in-place adds in the tensor's own memory
      layout (nn.LocalResponseNorm pads a 5-d copy for avg_pool3d), and the backward is the
      closed form (benchmarks/lrn.py). An exported or traced model sees the plain forward ops.
    """

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad and not torch.jit.is_tracing():
            return _LocalResponseNorm.apply(x, self.size, self.alpha, self.beta, self.k)
        xf = at_least_float32(x)
        return torch.mul(xf, lrn_denominator(xf, self.size, self.alpha, self.k).pow(-self.beta)).to(x.dtype)


def channel_window_sum(t: Tensor, before: int, after: int) -> Tensor:
    """out[:, c] = t[:, c - before] + ... + t[:, c + after], zeros beyond the channels."""
    out = t.clone()
    for shift in range(1, before + 1):
        out[:, shift:] += t[:, :-shift]
    for shift in range(1, after + 1):
        out[:, :-shift] += t[:, shift:]
    return out


def at_least_float32(x: Tensor) -> Tensor:
    """x in float32 (or float64): LRN's ops run in one dtype, since PyTorch's mixed bf16 x
    float32 elementwise ops measured slower on CPUs than a conversion and float32 ops."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def lrn_denominator(x: Tensor, size: int, alpha: float, k: float) -> Tensor:
    """d = k + alpha * the window mean of x^2, the window as F.local_response_norm pads it
    (size // 2 channels before, (size - 1) // 2 after)."""
    return channel_window_sum(x * x, size // 2, (size - 1) // 2).mul_(alpha / size).add_(k)


class _LocalResponseNorm(torch.autograd.Function):
    """y_i = x_i d_i^-beta, so dL/dx_j = g_j d_j^-beta - (2 alpha beta / size) x_j
    sum over the windows i that hold j of g_i x_i d_i^(-beta - 1). Few passes over memory:
    after conv2, a batch of 32 is 19 million values."""

    @staticmethod
    def forward(ctx, x: Tensor, size: int, alpha: float, beta: float, k: float) -> Tensor:
        xf = at_least_float32(x)
        d = lrn_denominator(xf, size, alpha, k)
        scale = d.pow(-beta)
        ctx.save_for_backward(xf, d, scale)
        ctx.settings = (size, alpha, beta)
        return torch.mul(xf, scale).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        xf, d, scale = ctx.saved_tensors
        size, alpha, beta = ctx.settings
        g = grad.to(xf.dtype)
        weighted = torch.mul(g, xf).mul_(scale).div_(d)  # g_i x_i d_i^(-beta - 1)
        # the transposed window: channel j is in the windows of i = j - (size - 1) // 2 .. j + size // 2
        spread = channel_window_sum(weighted, (size - 1) // 2, size // 2)
        dx = torch.addcmul(g.mul_(scale) if g is not grad else g * scale, xf, spread,
                           value=-2 * alpha * beta / size)
        return dx.to(grad.dtype), None, None, None, None
