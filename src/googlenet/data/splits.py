"""load_datasets: a DataConfig, AugmentConfig and Preprocessing -> the train and val splits as Datasets."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset

from googlenet.data.config import AugmentConfig, DataConfig, preprocessing
from googlenet.data.datasets import ImageFileDataset, TensorImageDataset
from googlenet.data.digits import digits_splits
from googlenet.data.memory import decode_all
from googlenet.data.preprocessing import Preprocessing
from googlenet.data.transforms import Transform, eval_transform, train_transform
from googlenet.data.trees import FileSplit, file_splits, open_tree, split_from_tree, tree_splits

LabelledDataset = ImageFileDataset | TensorImageDataset


@dataclass
class Datasets:
    train: Dataset
    val: Dataset
    classes: list[str]  # class names in index order


def is_digits(data: DataConfig) -> bool:
    return data.path == "digits" and not (data.train_dir or data.val_dir)


def load_datasets(data: DataConfig, augment: AugmentConfig, seed: int,
                  prep: Preprocessing | None = None) -> Datasets:
    """Find, check and wrap the data; every user error is raised here, before training starts.

    `prep` defaults to the data configuration's own preprocessing. "digits" is always held
    in memory. Files are decoded lazily in loader workers, or all at once when
    data.in_memory is set.
    """
    prep = prep or preprocessing(data)
    train_tf, val_tf = train_transform(prep, augment), eval_transform(prep)
    size = prep.input_size
    if is_digits(data):
        train_split, val_split = digits_splits()
        return Datasets(TensorImageDataset(train_split, train_tf, seed, size),
                        TensorImageDataset(val_split, val_tf, seed, size), train_split.classes)
    train_files, val_files = file_splits(data)
    # In memory, images are held at the size their transform first reduces them to.
    train_size = prep.input_size if augment.policy == "crop-flip" else prep.resize_size
    return Datasets(wrap(train_files, train_tf, seed, data, prep, train_size),
                    wrap(val_files, val_tf, seed, data, prep, prep.resize_size),
                    train_files.classes)


def wrap(split: FileSplit, transform: Transform, seed: int, data: DataConfig,
         prep: Preprocessing, memory_size: int) -> LabelledDataset:
    if data.in_memory:
        decoded = decode_all(split, memory_size, data.workers)
        return TensorImageDataset(decoded, transform, seed, prep.input_size)
    return ImageFileDataset(split, transform, seed, prep.input_size)


def load_eval_dataset(data: DataConfig, transform: Transform, input_size: int,
                      seed: int = 0) -> tuple[LabelledDataset, list[str]]:
    """The validation split of `data` with a transform of the caller's (e.g. test-time crops).

    Only the validation split is opened and checked; the training split is not read.
    """
    if is_digits(data):
        _, val_split = digits_splits()
        return TensorImageDataset(val_split, transform, seed, input_size), val_split.classes
    if data.val_dir:
        split = split_from_tree(open_tree(data.val_dir, data.cache_dir, data.max_image_mb), "")
    else:
        split = tree_splits(data.path, data)[1]
    return ImageFileDataset(split, transform, seed, input_size), split.classes
