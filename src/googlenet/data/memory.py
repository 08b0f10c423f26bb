"""in_memory=True: decode a split's files once into a uint8 N x 3 x S x S tensor.

Every image is stored at one size S (the shorter side resized to S, then center-cropped: the
first step of the transform that follows), so a folder of photos of mixed sizes works;
images already S x S (CIFAR-10 at 32) are stored as they are.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from googlenet.data.digits import TensorSplit
from googlenet.data.images import read_transformed
from googlenet.data.transforms import as_uint8, resize_center_crop
from googlenet.data.trees import FileSplit
from googlenet.errors import DataError

Decoded = tuple[np.ndarray | None, str | None]  # S x S x 3 pixels, or the reason they are missing


class DecodeFiles(Dataset[Decoded]):
    def __init__(self, split: FileSplit, size: int) -> None:
        self.split, self.size = split, size

    def __len__(self) -> int:
        return len(self.split.samples)

    def __getitem__(self, index: int) -> Decoded:
        name, _ = self.split.samples[index]
        return read_transformed(lambda: self.split.reader.read(name), self.to_stored_pixels)

    def to_stored_pixels(self, image: Image.Image) -> np.ndarray:
        """A decoded image as stored: S x S x 3 uint8."""
        return resize_center_crop(as_uint8(image)[None], self.size)[0].permute(1, 2, 0).numpy()


def decode_all(split: FileSplit, size: int, workers: int) -> TensorSplit:
    """Decode every image once (in worker processes) at size x size; unreadable files become
    bad slots."""
    # Numpy arrays travel between processes by pickling, not one shared-memory file each.
    loader = DataLoader(DecodeFiles(split, size), batch_size=256, num_workers=workers,
                        collate_fn=list, generator=torch.Generator())  # private: global RNG untouched
    decoded = [item for chunk in loader for item in chunk]
    bad = {i: reason for i, (_, reason) in enumerate(decoded) if reason is not None}
    good = [i for i in range(len(decoded)) if i not in bad]
    if not good:
        raise DataError(f"{split.location}: none of the {len(decoded)} images could be read")
    images = torch.zeros(len(decoded), 3, size, size, dtype=torch.uint8)
    pixels = np.stack([decoded[i][0] for i in good])  # type: ignore[misc]
    images[good] = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    labels = torch.tensor([label for _, label in split.samples], dtype=torch.int64)
    names = [split.reader.where(name) for name, _ in split.samples]
    return TensorSplit(images, labels, split.classes, names, bad)
