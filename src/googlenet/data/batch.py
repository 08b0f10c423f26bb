"""Batch, and the collate function that drops unreadable images from their batch."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

# What a dataset returns for one sample: (image or None, label, "PATH: reason" or None).
Item = tuple[Tensor | None, int, str | None]


class Batch(NamedTuple):
    images: Tensor  # float32 N x 3 x H x W, normalised
    labels: Tensor  # int64 N
    bad: list[str]  # "PATH: reason" for each image of this batch that could not be read (dropped)


class CollateBatch:
    """Stacks the good samples; names the bad ones. A batch of only bad samples has 0 images."""

    def __init__(self, image_size: int) -> None:
        self.image_size = image_size

    def __call__(self, items: list[Item]) -> Batch:
        good = [(image, label) for image, label, bad in items if bad is None]
        bad = [reason for _, _, reason in items if reason is not None]
        if not good:
            return Batch(torch.empty(0, 3, self.image_size, self.image_size), empty_labels(), bad)
        images = torch.stack([image for image, _ in good])  # type: ignore[misc]
        return Batch(images, torch.tensor([label for _, label in good], dtype=torch.int64), bad)


def empty_labels() -> Tensor:
    return torch.empty(0, dtype=torch.int64)
