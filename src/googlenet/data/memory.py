"""in_memory=True: decode a split's files once into a uint8 N x 3 x H x W tensor."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .digits import TensorSplit
from .images import BadImage, decode_image
from .sources import FileSplit

Decoded = tuple[np.ndarray | None, str | None]  # H x W x 3 pixels, or the reason they are missing


class DecodeFiles(Dataset[Decoded]):
    def __init__(self, split: FileSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split.samples)

    def __getitem__(self, index: int) -> Decoded:
        name, _ = self.split.samples[index]
        try:
            return np.asarray(decode_image(self.split.reader.read(name))), None
        except BadImage as error:
            return None, str(error)
        except OSError as error:
            return None, f"cannot read ({error.strerror or error})"


def decode_all(split: FileSplit, workers: int) -> TensorSplit:
    """Decode every image once (in worker processes); unreadable files become bad slots."""
    # Numpy arrays travel between processes by pickling, not one shared-memory file each.
    loader = DataLoader(DecodeFiles(split), batch_size=256, num_workers=workers, collate_fn=list,
                        generator=torch.Generator())  # private: leaves the global RNG alone
    decoded = [item for chunk in loader for item in chunk]
    bad = {i: reason for i, (_, reason) in enumerate(decoded) if reason is not None}
    size = single_size(split, decoded)
    images = torch.zeros(len(decoded), 3, *size, dtype=torch.uint8)
    good = [i for i in range(len(decoded)) if i not in bad]
    if good:
        pixels = np.stack([decoded[i][0] for i in good])  # type: ignore[misc]
        images[good] = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    labels = torch.tensor([label for _, label in split.samples], dtype=torch.int64)
    names = [split.reader.where(name) for name, _ in split.samples]
    return TensorSplit(images, labels, split.classes, names, bad)


def single_size(split: FileSplit, decoded: list[Decoded]) -> tuple[int, int]:
    """The one height x width of all readable images; a clear error if there are several."""
    sizes = Counter(array.shape[:2] for array, _ in decoded if array is not None)
    if not sizes:
        raise ValueError(f"{split.location}: none of the {len(decoded)} images could be read")
    if len(sizes) > 1:
        (first, n1), (second, n2) = sizes.most_common(2)
        example = next(split.samples[i][0] for i, (array, _) in enumerate(decoded)
                       if array is not None and array.shape[:2] == second)
        raise ValueError(f"{split.location}: in_memory needs images of one size, found "
                         f"{first[1]}x{first[0]} ({n1} images) and {second[1]}x{second[0]} "
                         f"({n2}, e.g. {split.reader.where(example)}); set in_memory off or "
                         "resize the images")
    return next(iter(sizes))
