"""Peak memory of each image path on one file, measured in a fresh process (run as a script).

    python tests/data/memory_probe.py IMAGE [--paths predict,evaluate,...] [--repeat N --threads T]

Prints one JSON object per path: the process's resident memory before (`base_mb`), its peak
during the path (`peak_mb`, VmHWM, reset before each path through /proc/self/clear_refs), its
resident memory after (`after_mb`), and the result's shape or the error. Paths are the
library's own: predict (1 crop), evaluate (10 crops), features (eval transform), train (the
paper's augmentation, as the training loader reads it) and serve (an upload's bytes).
Linux only (/proc). Used by test_image_memory.py and for the README's numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image

from googlenet.data.config import AugmentConfig
from googlenet.data.crops import multi_crop
from googlenet.data.datasets import ImageFileDataset
from googlenet.data.preprocessing import Preprocessing
from googlenet.data.transforms import eval_transform, train_transform
from googlenet.data.trees import DirectoryReader, FileSplit
from googlenet.inference.predictor import ImageFiles

PATHS = ("predict", "evaluate", "features", "train", "serve")


def status_mb(field: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) / 1024  # type: ignore[union-attr]


def run_path(path: str, image: Path) -> tuple[torch.Tensor | None, str | None]:
    prep = Preprocessing()
    if path in ("predict", "features"):
        transform = multi_crop(prep, (1,)) if path == "predict" else eval_transform(prep)
        result, _, error = ImageFiles([image], transform, 128)[0]
        return result, error
    if path in ("evaluate", "train"):
        transform = (multi_crop(prep, (10,)) if path == "evaluate"
                     else train_transform(prep, AugmentConfig()))
        split = FileSplit(str(image.parent), DirectoryReader(image.parent), [(image.name, 0)], ["a"])
        result, _, error = ImageFileDataset(split, transform, 0, prep.input_size)[0]
        return result, error
    from googlenet.data.images import read_transformed  # what the server calls for an upload

    data = image.read_bytes()
    return read_transformed(lambda: data, multi_crop(prep, (1,)))


def measure(path: str, image: Path, repeat: int, threads: int) -> dict:
    base = status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    with ThreadPoolExecutor(threads) as pool:  # the server decodes in a thread pool
        results = list(pool.map(lambda _: run_path(path, image), range(repeat)))
    result, error = results[-1]
    return {"path": path, "base_mb": round(base, 1), "peak_mb": round(status_mb("VmHWM"), 1),
            "after_mb": round(status_mb("VmRSS"), 1), "error": error,
            "shape": None if result is None else list(result.shape)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("image", type=Path)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:  # imports and first calls before measuring
        warmup = Path(folder) / "warmup.png"
        Image.new("RGB", (320, 240)).save(warmup)
        for path in args.paths.split(","):
            run_path(path, warmup)
    for path in args.paths.split(","):
        print(json.dumps(measure(path, args.image, args.repeat, args.threads)), flush=True)


if __name__ == "__main__":
    main()
