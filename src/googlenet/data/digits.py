"""The built-in data set: scikit-learn's bundled digits (1,797 real 8x8 gray images, no download).

The validation split is stratified and fixed (its own seed, not the training
seed), so every run, whatever its seed, validates on the same 20% of images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

VAL_FRACTION = 0.2
SPLIT_SEED = 20150607  # fixed on purpose: independent of RunConfig.seed


@dataclass(frozen=True)
class TensorSplit:
    """Decoded images held in memory: uint8 N x 3 x H x W, int64 labels, and a name per image."""

    images: Tensor
    labels: Tensor
    classes: list[str]
    names: list[str]
    bad: dict[int, str] = field(default_factory=dict)  # index -> reason, for files that failed


def load_digits_images() -> tuple[Tensor, Tensor]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("data 'digits' needs scikit-learn (pip install scikit-learn)") from None
    digits = load_digits()
    # Pixel values are 0..16; spread them over 0..255 and repeat gray into RGB.
    gray = torch.from_numpy(digits.images * (255 / 16)).round().to(torch.uint8)  # N x 8 x 8
    images = gray[:, None].expand(-1, 3, -1, -1).contiguous()  # N x 3 x 8 x 8
    return images, torch.from_numpy(digits.target).long()


def stratified_val_indices(labels: Tensor, fraction: float, seed: int) -> Tensor:
    """round(fraction * n_c) images of each class c, chosen by a fixed generator; sorted."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().flatten()
        order = torch.randperm(len(members), generator=generator)
        chosen.append(members[order[: round(fraction * len(members))]])
    return torch.cat(chosen).sort().values


def digits_splits() -> tuple[TensorSplit, TensorSplit]:
    images, labels = load_digits_images()
    val = stratified_val_indices(labels, VAL_FRACTION, SPLIT_SEED)
    is_val = torch.zeros(len(labels), dtype=torch.bool)
    is_val[val] = True
    train = (~is_val).nonzero().flatten()
    classes = [str(digit) for digit in range(10)]

    def subset(indices: Tensor) -> TensorSplit:
        names = [f"digits[{i}]" for i in indices.tolist()]
        return TensorSplit(images[indices], labels[indices], classes, names)

    return subset(train), subset(val)
