"""Data: digits, ImageFolder trees and tar archives, the paper's augmentation, resumable loaders.

    datasets = load_datasets(config.data, config.augment, seed)
    loader = make_loader(datasets.train, batch_size, train=True, workers=2, seed=seed)
    for epoch in ...:
        loader.set_epoch(epoch)          # or set_epoch(epoch, skip_batches=k) to resume mid-epoch
        for images, labels, bad in loader: ...
"""

from .batch import Batch
from .crops import SCHEMES, MultiCrop, crop_views, multi_crop
from .images import BadImage, decode_image
from .load import Datasets, load_datasets, load_eval_dataset
from .loader import EpochLoader, EpochSampler, make_loader
from .transforms import eval_transform, train_transform

__all__ = ["SCHEMES", "MultiCrop", "crop_views", "multi_crop", "load_eval_dataset",
           "BadImage", "Batch", "Datasets", "EpochLoader", "EpochSampler", "decode_image",
           "eval_transform", "load_datasets", "make_loader", "train_transform"]
