"""The epoch loader: a deterministic, resumable, shardable order of batches.

Exact mid-epoch resume: an epoch's order is a function of (seed, epoch) only,
each sample's augmentation a function of (seed, epoch, index) (keys.py), and
`set_epoch(epoch, skip_batches=k)` starts at the k-th batch without loading
the first k. The epoch travels with each index, as (index, epoch) pairs, so
persistent workers (reused across epochs) need no epoch attribute of their
own. Nothing here draws from the global torch RNG, so iterating a loader does
not change the random stream the training step sees.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator, Sized

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler

from googlenet.data.batch import Batch, CollateBatch
from googlenet.data.datasets import TensorImageDataset
from googlenet.data.keys import epoch_generator

PREFETCH_FACTOR = 4  # batches in flight per worker: hides decode jitter, bounded memory


class EpochSampler(DistributedSampler):
    """This rank's share of an epoch, as (index, epoch) pairs, from batch `skip_batches` on.

    Training (shuffle): a permutation of (seed, epoch), padded by repeating its start
    so every rank gets the same number of samples, then rank r takes every
    world_size-th index from r, as torch's DistributedSampler does. Evaluation: the
    samples in order, rank r taking indices r, r + world_size, ...; no padding, so
    every sample is counted once and ranks may differ by one sample (engines should
    sum correct counts across ranks, not average per-rank accuracies).
    """

    def __init__(self, dataset: Sized, batch_size: int, *, shuffle: bool, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=False)  # DistributedSampler's drop_last trims; we pad instead
        if not shuffle:
            self.num_samples = len(range(rank, len(dataset), world_size))  # type: ignore[arg-type]
        self.batch_size = batch_size
        self.skip_batches = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, skip_batches

    def epoch_indices(self) -> list[int]:
        """The whole epoch's indices for this rank, skipped batches included."""
        n = len(self.dataset)  # type: ignore[arg-type]
        if not self.shuffle:
            return list(range(self.rank, n, self.num_replicas))
        order = torch.randperm(n, generator=epoch_generator(self.seed, self.epoch)).tolist()
        padding = self.total_size - n
        order += (order * math.ceil(padding / n))[:padding] if padding else []
        return order[self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        for index in self.epoch_indices()[self.skip_batches * self.batch_size:]:
            yield index, self.epoch

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip_batches * self.batch_size)


def ignore_interrupts(worker_id: int) -> None:
    """Ctrl-C reaches the workers too; the main process alone decides when to stop and save."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class EpochLoader:
    """Iterate for one epoch's Batches; `set_epoch` before each epoch; len() = batches per epoch.

    File data sets go through a DataLoader with persistent workers. In-memory data
    with crop-flip augmentation is sliced and augmented a whole batch at a time in
    the main process (no workers: there is nothing to decode).
    """

    def __init__(self, dataset: Dataset, sampler: EpochSampler, batch_size: int, *,
                 drop_last: bool, workers: int, pin_memory: bool) -> None:
        self.dataset, self.sampler, self.batch_size = dataset, sampler, batch_size
        self.drop_last, self.pin_memory = drop_last, pin_memory
        self.batched = isinstance(dataset, TensorImageDataset) and dataset.batched
        self.loader = None if self.batched else DataLoader(
            dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
            collate_fn=CollateBatch(dataset.image_size),  # type: ignore[attr-defined]
            num_workers=workers, persistent_workers=workers > 0, pin_memory=pin_memory,
            prefetch_factor=PREFETCH_FACTOR if workers > 0 else None,
            generator=torch.Generator(),  # private: DataLoader draws a base seed per iterator
            worker_init_fn=ignore_interrupts)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """The next iteration yields batches skip_batches, skip_batches + 1, ... of `epoch`."""
        if not 0 <= skip_batches <= len(self):
            raise ValueError(f"skip_batches must be in [0, {len(self)}], got {skip_batches}")
        self.sampler.set_epoch(epoch, skip_batches)

    def __len__(self) -> int:
        """Batches in a whole epoch on this rank (skipped batches included)."""
        samples = self.sampler.num_samples
        if self.drop_last:
            return samples // self.batch_size
        return math.ceil(samples / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        if self.loader is not None:
            yield from self.loader
            return
        assert isinstance(self.dataset, TensorImageDataset)
        for keys in BatchSampler(self.sampler, self.batch_size, self.drop_last):
            batch = self.dataset.batch(keys)
            if self.pin_memory and torch.cuda.is_available():
                batch = Batch(batch.images.pin_memory(), batch.labels.pin_memory(), batch.bad)
            yield batch


def make_loader(dataset: Dataset, batch_size: int, *, train: bool, workers: int, seed: int,
                rank: int = 0, world_size: int = 1, pin_memory: bool = False,
                drop_last: bool | None = None) -> EpochLoader:
    """Training loaders shuffle and drop the last partial batch; eval loaders keep order and all."""
    if batch_size <= 0 or workers < 0 or not 0 <= rank < world_size:
        raise ValueError(f"need batch_size > 0, workers >= 0 and 0 <= rank < world_size; got "
                         f"batch_size={batch_size}, workers={workers}, rank={rank}, "
                         f"world_size={world_size}")
    drop_last = train if drop_last is None else drop_last
    sampler = EpochSampler(dataset, batch_size, shuffle=train, seed=seed,  # type: ignore[arg-type]
                           rank=rank, world_size=world_size)
    loader = EpochLoader(dataset, sampler, batch_size, drop_last=drop_last, workers=workers,
                         pin_memory=pin_memory)
    if train and len(loader) == 0:
        size = len(dataset)  # type: ignore[arg-type]
        raise ValueError(f"training set of {size} images gives no full batch of {batch_size} "
                         f"per process (world_size {world_size}); lower batch_size")
    return loader
