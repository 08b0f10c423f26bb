"""`googlenet batch predict` on Ray Data against single-process `googlenet predict` and a
hand-written Ray Data script, every row in one run, on real photographs.

    python benchmarks/batch_inference.py                   # writes benchmarks/results/batch_inference.md
    python benchmarks/batch_inference.py --images 1000 --large 0 --folder PHOTOS/

Photographs: the first N CIFAR-10 test JPEGs (../shared/data/cifar10/test.tar, extracted to a
temporary folder), or the images of --folder. Model: variant bn at 224x224 with random weights of
1000 classes (speed does not depend on them), on torch and as int8 ONNX on ONNX Runtime.
Rows, each a fresh command in its own process tree: `googlenet predict` (DataLoader workers, the
default threads), `googlenet batch predict` with 1 and 2 actors (a local Ray instance started by
the command), and what a user writes from Ray's batch-inference example: read_images, a
torchvision transform in `map`, torchvision's googlenet in a callable class on an actor pool.

Per row: wall time of the whole command (start-up included), images/s over that wall time, the
steady rate (predict: the rate it prints, model loading excluded; Ray: rows between the first
and the last Parquet part over the time between them), and the peak memory of the command's
whole process tree (the sum of PSS over the driver, Ray's processes and workers, sampled every
0.5 s; PSS shares the object store's shared pages between the processes that map them).
--large N repeats predict and the Ray job on int8 at N files, for how speed and memory grow.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import models  # noqa: E402  (the same bn, fp32 and int8 models as the serving rows)

RESULTS = Path(__file__).parent / "results" / "batch_inference.md"
CIFAR = Path(__file__).resolve().parents[2] / "shared/data/cifar10/test.tar"
HAND_WRITTEN = '''
import sys, numpy as np, ray, torch, torchvision
from torchvision import transforms as T

ray.init(num_cpus=int(sys.argv[3]), include_dashboard=False)
transform = T.Compose([T.ToTensor(), T.Resize(256), T.CenterCrop(224),
                       T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

def preprocess(row):
    return {"path": row["path"], "transformed": transform(row["image"]).numpy()}

class GoogLeNet:
    def __init__(self):
        self.model = torchvision.models.googlenet(weights=None, aux_logits=False,
                                                  init_weights=False).eval()

    def __call__(self, batch):
        with torch.inference_mode():
            probabilities = self.model(torch.from_numpy(batch["transformed"])).softmax(1)
        top = probabilities.topk(5)
        return {"path": batch["path"], "classes": top.indices.numpy(), "probabilities": top.values.numpy()}

ds = ray.data.read_images(sys.argv[1], mode="RGB", include_paths=True).map(preprocess)
ds.map_batches(GoogLeNet, concurrency=1, batch_size=32).write_parquet(sys.argv[2])
'''


def photographs(count: int, folder: Path) -> Path:
    """The first `count` CIFAR-10 test JPEGs, extracted into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(CIFAR) as archive:
        members = [m for m in archive if m.isfile() and m.name.endswith(".jpg")][:count]
        for i, member in enumerate(members):
            (folder / f"{i:05d}.jpg").write_bytes(archive.extractfile(member).read())
    return folder


class PeakMemory:
    """The peak of the summed PSS of a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.root, self.peak, self.done = psutil.Process(pid), 0, threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self) -> None:
        while not self.done.wait(0.5):
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for process in tree:
                try:
                    total += process.memory_full_info().pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.peak


def run(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak PSS bytes, stderr + stdout) of a command, which must succeed."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, start_new_session=True)
    memory = PeakMemory(process.pid)
    out, err = process.communicate()
    wall = time.perf_counter() - start
    peak = memory.stop()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{err[-3000:]}")
    return wall, peak, err + out


def steady_rate(output: Path) -> float | None:
    """Rows after the first part over the time from the first part to the last."""
    import pyarrow.parquet as pq

    parts = sorted(output.glob("*.parquet"), key=lambda p: p.stat().st_mtime)
    if len(parts) < 3:
        return None
    rows = sum(pq.read_metadata(p).num_rows for p in parts[1:])
    return rows / max(parts[-1].stat().st_mtime - parts[0].stat().st_mtime, 1e-9)


def googlenet(*argv: str) -> list[str]:
    return [sys.executable, "-m", "googlenet", *argv]


def rows_for(name: str, model: Path, backend: str, photos: Path, count: int, work: Path,
             actor_counts: tuple[int, ...]) -> list[dict]:
    rows = []
    wall, peak, text = run(googlenet("predict", str(photos), "-m", str(model), "--backend", backend,
                                     "--format", "json"))
    printed = float(re.search(r"([\d.]+) images/s", text).group(1))
    rows.append({"row": f"`googlenet predict`, {name}", "files": count, "wall": wall, "steady": printed,
                 "peak": peak})
    for actors in actor_counts:
        output = work / f"out-{backend}-{actors}-{count}"
        wall, peak, text = run(googlenet("batch", "predict", str(photos), "-m", str(model), "--backend",
                                         backend, "--output", str(output), "--force", "--actors",
                                         str(actors), "--rows-per-file", "100"))
        assert f"{count:,} images, 0 failed" in text, text[-2000:]
        threads = re.search(r"\((\d+) actors x (\d+) threads\)", text).group(0)
        rows.append({"row": f"`googlenet batch predict`, {name}, {threads[1:-1]}", "files": count,
                     "wall": wall, "steady": steady_rate(output), "peak": peak})
    for row in rows:
        row["base"] = rows[0]["files"] / rows[0]["wall"]
    return rows


def hand_written(photos: Path, count: int, work: Path) -> dict:
    script = work / "hand_written.py"
    script.write_text(HAND_WRITTEN)
    output = work / f"out-hand-{count}"
    wall, peak, _ = run([sys.executable, str(script), str(photos), str(output), str(os.cpu_count())])
    return {"row": "hand-written Ray Data script (torchvision googlenet, Ray's example)",
            "files": count, "wall": wall, "steady": None, "peak": peak}


def table(rows: list[dict], hand: dict) -> list[str]:
    lines = ["| row | files | wall s | images/s (wall) | vs predict | vs hand-written "
             "| steady images/s | peak memory MB |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    hand_rate = hand["files"] / hand["wall"]
    for row in rows:
        rate = row["files"] / row["wall"]
        vs = f"{rate / row['base']:.2f}x" if row.get("base") else "-"
        vs_hand = f"{rate / hand_rate:.2f}x" if row["files"] == hand["files"] else "-"
        steady = f"{row['steady']:.1f}" if row["steady"] else "-"
        lines.append(f"| {row['row']} | {row['files']:,} | {row['wall']:.1f} | {rate:.1f} | {vs} | "
                     f"{vs_hand} | {steady} | {row['peak'] / 2**20:.0f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10000, help="files of the growth rows (0: none)")
    parser.add_argument("--folder", type=Path, help="photographs to use instead of CIFAR-10's")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.folder is None and not CIFAR.exists():
        print(f"{CIFAR} is missing: give --folder", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="batch_inference_") as tmp:
        work = Path(tmp)
        paths = models(work)
        small = args.folder or photographs(args.images, work / "photos")
        count = sum(1 for p in small.rglob("*") if p.is_file())
        rows = []
        for name, model, backend in (("int8 ONNX", paths["onnxruntime int8"], "onnxruntime"),
                                     ("torch", paths["torch"], "torch")):
            rows += rows_for(name, model, backend, small, count, work, (1, 2))
        hand = hand_written(small, count, work)
        rows.append(hand)
        if args.large and args.folder is None:
            large = photographs(args.large, work / "large")
            rows += rows_for("int8 ONNX", paths["onnxruntime int8"], "onnxruntime", large, args.large,
                             work, (1,))
            shutil.rmtree(large)
    photos = "CIFAR-10 test JPEGs (32x32)" if args.folder is None else str(args.folder)
    lines = ["# `googlenet batch predict` on Ray Data", "",
             f"Command: `python benchmarks/batch_inference.py --images {args.images} --large {args.large}`. "
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
             f"(shared with other work; rows run one after another under one lock); torch "
             f"{torch.__version__}; ray {__import__('ray').__version__}. Variant bn, 224x224, random "
             f"weights of 1000 classes; {photos}.",
             "", *table(rows, hand), ""]
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
