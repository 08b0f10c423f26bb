"""Training-loader throughput on CIFAR-10's train.tar, in images per second.

    .venv/bin/python benchmarks/loader_throughput.py [--batches 20] [--batch-size 256]

Rows: the archive read in place with the paper's augmentation at 32x32 and 0, 1
and 2 workers (workers=0, the baseline, is what every speedup is relative to),
then in_memory=True with batched crop-flip in the main process (with torch's
default threads and with one). Setup (indexing
the archive, or decoding all 50,000 JPEGs) is timed on its own; the first batch
(worker start-up) is timed on its own too and left out of images/s. Skips with
a message where ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

from googlenet.data.config import AugmentConfig, DataConfig
from googlenet.data.loader import make_loader
from googlenet.data.splits import load_datasets

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared/data"


def measure(dataset, batch_size: int, batches: int, workers: int) -> tuple[float, float]:
    """(seconds to the first batch, images/s over the next `batches` batches)."""
    loader = make_loader(dataset, batch_size, train=True, workers=workers, seed=0)
    loader.set_epoch(0)
    start = time.perf_counter()
    iterator = iter(loader)
    next(iterator)
    first = time.perf_counter()
    images = sum(len(next(iterator).images) for _ in range(batches))
    return first - start, images / (time.perf_counter() - first)


def timed_load(data: DataConfig, augment: AugmentConfig):
    start = time.perf_counter()
    datasets = load_datasets(data, augment, seed=0)
    return datasets, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    train_tar, test_tar = SHARED_DATA / "cifar10/train.tar", SHARED_DATA / "cifar10/test.tar"
    if not (train_tar.exists() and test_tar.exists()):
        print(f"skipped: CIFAR-10 archives not found under {SHARED_DATA}/cifar10/")
        return 0
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# {args.batches} batches of {args.batch_size} after the first, CIFAR-10 train.tar\n")
    data = DataConfig(train_dir=str(train_tar), val_dir=str(test_tar), input_size=32, workers=2)
    rows = []
    tar, setup = timed_load(data, AugmentConfig(policy="paper"))
    for workers in (0, 1, 2):
        rows.append(("tar in place, paper 32x32", workers, setup if workers == 0 else 0.0,
                     *measure(tar.train, args.batch_size, args.batches, workers)))
    memory, setup = timed_load(DataConfig(**{**data.__dict__, "in_memory": True}),
                               AugmentConfig(policy="crop-flip"))
    rows.append(("in memory, batched crop-flip", 0, setup,
                 *measure(memory.train, args.batch_size, args.batches, 0)))
    # The batched path runs on the main process's intra-op threads; on a busy machine
    # one thread can beat several (they wait on each other), so measure both.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows.append(("  same, 1 torch thread", 0, 0.0,
                 *measure(memory.train, args.batch_size, args.batches, 0)))
    torch.set_num_threads(threads)
    baseline = rows[0][4]
    print(f"| {'loader':<30} | workers | setup s | first batch s | images/s | vs workers=0 |")
    print(f"|{'-' * 32}|---------|---------|---------------|----------|--------------|")
    for name, workers, setup, first, rate in rows:
        print(f"| {name:<30} | {workers:>7} | {setup:>7.2f} | {first:>13.2f} | {rate:>8.0f} "
              f"| {rate / baseline:>11.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
