"""Weights and the preprocessing that goes with them.

Normalisation is part of the data transforms and of the weights' metadata,
never hidden inside the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std for RGB input scaled to [0, 1]."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, x: Tensor) -> Tensor:
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return (x - mean) / std


IMAGENET_NORMALIZATION = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

# torchvision's ImageNet weights for googlenet switch on `transform_input`, which
# turns ImageNet-normalised input back into (x - 0.5) / 0.5 inside the model.
# Our model does not do that; normalising with mean 0.5 and std 0.5 directly is
# the same preprocessing.
TORCHVISION_GOOGLENET_NORMALIZATION = Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

