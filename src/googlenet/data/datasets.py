"""Dataset classes: images read from files one by one, or held decoded in memory.

Both take `(index, epoch)` keys (what EpochSampler yields; a plain index means
epoch 0) and seed the sample's augmentation from (seed, epoch, index), so an
item does not depend on which worker loads it or what that worker loaded before.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from googlenet.data.batch import Batch, Item, empty_labels
from googlenet.data.digits import TensorSplit
from googlenet.data.images import read_transformed
from googlenet.data.keys import SampleKey
from googlenet.data.transforms import CropFlip, Transform
from googlenet.data.trees import FileSplit

Key = int | tuple[int, int]


def split_key(key: Key) -> tuple[int, int]:
    if isinstance(key, tuple):
        return int(key[0]), int(key[1])
    return int(key), 0


class ImageFileDataset(Dataset[Item]):
    """Images decoded from a directory or tar archive when asked for (in DataLoader workers)."""

    def __init__(self, split: FileSplit, transform: Transform, seed: int, image_size: int) -> None:
        self.split, self.transform, self.seed, self.image_size = split, transform, seed, image_size
        self.classes = split.classes

    def __len__(self) -> int:
        return len(self.split.samples)

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.split.samples]

    def __getitem__(self, key: Key) -> Item:
        index, epoch = split_key(key)
        name, label = self.split.samples[index]
        reader = self.split.reader
        image, reason = read_transformed(lambda: reader.read(name), self.transform,
                                         SampleKey(self.seed, epoch, index))
        if image is None:
            return None, label, f"{reader.where(name)}: {reason}"
        return image, label, None


class TensorImageDataset(Dataset[Item]):
    """Decoded uint8 images in memory (digits, in_memory=True); files that failed stay as bad slots.

    With CropFlip, `batch` augments a whole batch at once in the main process.
    """

    def __init__(self, split: TensorSplit, transform: Transform, seed: int,
                 image_size: int) -> None:
        self.split, self.transform, self.seed, self.image_size = split, transform, seed, image_size
        self.classes = split.classes

    def __len__(self) -> int:
        return len(self.split.labels)

    @property
    def targets(self) -> list[int]:
        return self.split.labels.tolist()

    @property
    def batched(self) -> bool:
        return isinstance(self.transform, CropFlip)

    def bad_reason(self, index: int) -> str | None:
        reason = self.split.bad.get(index)
        return None if reason is None else f"{self.split.names[index]}: {reason}"

    def __getitem__(self, key: Key) -> Item:
        index, epoch = split_key(key)
        label = int(self.split.labels[index])
        reason = self.bad_reason(index)
        if reason is not None:
            return None, label, reason
        image = self.transform(self.split.images[index], SampleKey(self.seed, epoch, index))
        return image, label, None

    def batch(self, keys: list[tuple[int, int]]) -> Batch:
        assert isinstance(self.transform, CropFlip)
        epoch = keys[0][1]
        reasons = [self.bad_reason(index) for index, _ in keys]
        bad = [reason for reason in reasons if reason is not None]
        good = torch.tensor([index for (index, _), reason in zip(keys, reasons) if reason is None],
                            dtype=torch.int64)
        if len(good) == 0:
            return Batch(torch.empty(0, 3, self.image_size, self.image_size), empty_labels(), bad)
        images = self.transform.batch(self.split.images[good], self.seed, epoch, good)
        return Batch(images, self.split.labels[good], bad)
