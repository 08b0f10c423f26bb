"""load_datasets: a DataConfig and AugmentConfig -> training and validation Datasets."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset

from ..config import AugmentConfig, DataConfig
from .datasets import ImageFileDataset, TensorImageDataset
from .digits import digits_splits
from .memory import decode_all
from .sources import FileSplit, file_splits, find_splits, open_tree, split_from_tree
from .transforms import Transform, eval_transform, train_transform


@dataclass
class Datasets:
    train: Dataset
    val: Dataset
    classes: list[str]  # class names in index order


def load_datasets(data: DataConfig, augment: AugmentConfig, seed: int) -> Datasets:
    """Find, check and wrap the data; every user error is raised here, before training starts.

    "digits" is always held in memory. Files are decoded lazily in loader workers,
    or all at once when data.in_memory is set.
    """
    train_tf, val_tf = train_transform(data, augment), eval_transform(data)
    if data.data == "digits" and not (data.train_dir or data.val_dir):
        train_split, val_split = digits_splits()
        return Datasets(TensorImageDataset(train_split, train_tf, seed, data.input_size),
                        TensorImageDataset(val_split, val_tf, seed, data.input_size),
                        train_split.classes)
    train_files, val_files = file_splits(data)
    return Datasets(wrap(train_files, train_tf, seed, data),
                    wrap(val_files, val_tf, seed, data), train_files.classes)


def wrap(split: FileSplit, transform: Transform, seed: int,
         data: DataConfig) -> ImageFileDataset | TensorImageDataset:
    if data.in_memory:
        return TensorImageDataset(decode_all(split, data.workers), transform, seed, data.input_size)
    return ImageFileDataset(split, transform, seed, data.input_size)


def load_eval_dataset(data: DataConfig, transform: Transform,
                      seed: int = 0) -> tuple[ImageFileDataset | TensorImageDataset, list[str]]:
    """The validation split of `data` with a transform of the caller's (e.g. test-time crops).

    Only the validation split is opened and checked; the training split is not read.
    """
    if data.data == "digits" and not (data.train_dir or data.val_dir):
        _, val_split = digits_splits()
        return TensorImageDataset(val_split, transform, seed, data.input_size), val_split.classes
    if data.val_dir:
        split = split_from_tree(open_tree(data.val_dir, data.cache_dir), "")
    else:
        tree = open_tree(data.data, data.cache_dir)
        split = split_from_tree(tree, find_splits(tree)[1])
    return ImageFileDataset(split, transform, seed, data.input_size), split.classes
