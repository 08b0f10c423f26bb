"""`googlenet features`: embeddings (the pooled 1024-d vector, or any trunk layer) of image
files, batched, written as .npy or .parquet."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from googlenet.data.config import DEFAULT_MAX_IMAGE_MB
from googlenet.data.transforms import eval_transform
from googlenet.errors import DataError, ModelSourceError
from googlenet.extras import require_extra
from googlenet.inference.backends import TorchBackend
from googlenet.inference.options import FEATURE_SUFFIXES as OUTPUT_SUFFIXES
from googlenet.inference.options import POOLS
from googlenet.inference.predictor import OnBatch, Predictor, find_images, image_batches, timed
from googlenet.model.network import GoogLeNet
from googlenet.runtime.files import atomic_path


@dataclass
class Features:
    files: list[str]  # the images that were read, in input order
    values: np.ndarray  # len(files) x D (pooled) or len(files) x C x H x W
    layer: str
    errors: dict[str, str]  # file -> why it was skipped
    images_per_second: float


def layer_output(model: GoogLeNet, images: torch.Tensor, layer: str | None, pool: str) -> torch.Tensor:
    if layer is None:
        return model.forward_head(model.forward_features(images), pre_logits=True)
    maps = model.feature_maps(images, [layer])[layer]
    return maps.mean((2, 3)) if pool == "avg" else maps


@torch.no_grad()
def extract_features(predictor: Predictor, inputs: list[str], *, layer: str | None = None,
                     pool: str = "avg", batch_size: int = 32, workers: int = 0,
                     max_image_mb: float = DEFAULT_MAX_IMAGE_MB,
                     on_start: Callable[[int], None] | None = None,
                     on_batch: OnBatch | None = None) -> Features:
    """Embeddings of every readable image (files or folders); unreadable ones are named in
    `errors`. Needs the torch backend (a checkpoint or weights, not an exported graph).
    `on_start(files)` and `on_batch(files, files/s)`: as `Predictor.predict_files`'."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    if not isinstance(predictor.backend, TorchBackend):
        raise ModelSourceError(f"{predictor.name}: features need a PyTorch model (a checkpoint or "
                               "weights), not an exported graph")
    model, device = predictor.backend.model, predictor.backend.device
    if layer is not None:
        layer = model.layer_name(layer)
    files = find_images(inputs)
    if on_start is not None:
        on_start(len(files))
    kept: list[tuple[int, np.ndarray]] = []
    errors: dict[str, str] = {}
    start = time.perf_counter()
    transform = eval_transform(predictor.preprocessing)
    batches = image_batches(files, transform, batch_size, workers, max_image_mb)
    for images, indices, failed in timed(batches, on_batch):
        errors.update({str(files[index]): error for index, error in failed.items()})
        if images is not None:
            images = images.to(device).contiguous(memory_format=torch.channels_last)
            values = layer_output(model, images, layer, pool).float().cpu().numpy()
            kept += list(zip(indices, values))
    rate = len(files) / (time.perf_counter() - start)
    if not kept:
        raise DataError("no readable images: " + "; ".join(f"{f}: {e}" for f, e in errors.items()))
    kept.sort(key=lambda item: item[0])
    return Features([str(files[i]) for i, _ in kept], np.stack([v for _, v in kept]),
                    layer or "features", errors, rate)


def save_features(features: Features, path: Path) -> None:
    """.npy: the array, with the file names beside it in PATH.files.txt (one per line, the
    array's row order). .parquet: a `file` column and a `features` list column."""
    path = Path(path)
    if path.suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"{path}: the output must end in {' or '.join(OUTPUT_SUFFIXES)}")
    if path.suffix == ".npy":
        with atomic_path(path) as tmp:
            np.save(tmp, features.values)
        with atomic_path(files_list_path(path)) as tmp:
            tmp.write_text("".join(f + "\n" for f in features.files))
        return
    require_extra("parquet", "writing .parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq
    flat = features.values.reshape(len(features.values), -1)
    table = pa.table({"file": features.files, "features": list(flat)},
                     metadata={"layer": features.layer, "shape": str(features.values.shape[1:])})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def files_list_path(npy_path: Path) -> Path:
    return npy_path.with_name(npy_path.stem + ".files.txt")
