"""Training and inference on a quiet CPU and on one shared with a CPU-bound process, with the
old thread policy (all cores) and the new one (the cores other processes leave free), in one run.

    python benchmarks/shared_cpu.py --rounds 2      # writes benchmarks/results/shared_cpu.md

Workloads, each in a fresh process: the digits demo's training (`googlenet train`'s default
recipe: paper variant with aux heads, 32x32, batch 64); the CIFAR-10 `fast` recipe's training
(bn, 32x32, batch 128) on 2,000 CIFAR-10 training images (throughput depends on the model and
the batch, not on the number of images); and inference as in `googlenet bench` (bn at 224x224,
batch 32: PyTorch eager and ONNX Runtime fp32). The competitor is `python -c "while True:
pass"`, started before the workload and killed after it. Policies: "all cores" (threads =
cores; what `train` uses, for reproducibility) and "free cores" (googlenet.runtime.threads: the
inference commands' default; training with `--follow-free-cores`, re-measured every 5 s).
Rows are medians over rounds; conditions alternate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CIFAR = REPO.parent / "shared" / "data" / "cifar10" / "train.tar"
from report import write_report  # noqa: E402 - benchmarks/report.py, beside this script

RESULTS = REPO / "benchmarks" / "results" / "shared_cpu.md"
WORKLOADS = ("train digits", "train cifar10 fast", "infer torch eager", "infer onnxruntime fp32")
POLICIES = ("all cores", "free cores")


# --- The child: one workload under one policy, prints images/s as JSON ---------------------


def set_threads(policy: str) -> int:
    import torch

    from googlenet.runtime.threads import free_cores, usable_cores

    threads = usable_cores() if policy == "all cores" else free_cores()
    torch.set_num_threads(threads)
    return threads


def child_train(recipe: str, data: str | None, policy: str, warm: int, steps: int) -> float:
    from googlenet.training.callbacks import Callback
    from googlenet.training.config import load_recipe, with_overrides
    from googlenet.training.loop import train

    class Timer(Callback):
        """Training steps only: time between consecutive batches of one epoch, after `warm`."""

        def __init__(self) -> None:
            self.count, self.seconds, self.images = 0, 0.0, 0
            self.previous: tuple[float, int] | None = None

        def on_epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
            self.previous = None  # validation and checkpoints lie between epochs

        def on_batch(self, result, mean_loss) -> None:
            now = time.perf_counter()
            if self.previous is not None and self.count >= warm:
                self.seconds += now - self.previous[0]
                self.images += result.images - self.previous[1]
            self.previous, self.count = (now, result.images), self.count + 1

    timer = Timer()
    callbacks = [timer]
    with tempfile.TemporaryDirectory() as out:
        overrides = {"output": out, "quiet": True, "epochs": 50,
                     "follow_free_cores": policy == "free cores"}
        if data:
            overrides.update(path="", train_dir=f"{data}/train", val_dir=f"{data}/val")
        config = with_overrides(load_recipe(recipe), overrides)
        train(config, callbacks=callbacks, max_steps=warm + steps)
    return timer.images / timer.seconds


def child_infer(backend: str, policy: str, calls: int) -> float:
    import torch

    from googlenet.deploy.export import export_onnx, inference_model
    from googlenet.deploy.zoo import file_runner, ours, torch_runner

    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as folder:
        if backend == "torch":
            run = torch_runner(ours("bn"), 32, 224)
        else:
            path = Path(folder) / "bn.onnx"
            export_onnx(inference_model(ours("bn")), path, 224, None, 17, {})
            run = file_runner("onnxruntime", path, 32, 224, threads)
        run()
        start = time.perf_counter()
        for _ in range(calls):
            run()
        return 32 * calls / (time.perf_counter() - start)


def child(args: argparse.Namespace) -> None:
    threads = set_threads(args.policy)
    if args.workload == "train digits":
        rate = child_train("digits", None, args.policy, warm=5, steps=args.steps)
    elif args.workload == "train cifar10 fast":
        rate = child_train("fast", args.data, args.policy, warm=3, steps=max(8, args.steps // 2))
    else:
        rate = child_infer("torch" if "torch" in args.workload else "onnxruntime", args.policy,
                           calls=args.calls)
    print(json.dumps({"images_per_second": rate, "threads_at_start": threads}))


# --- The parent: every combination, quiet and busy -----------------------------------------


def cifar_subset(folder: Path, per_class: int = 200) -> Path:
    """`per_class` training images a class (train/) and 20 a class (val/), out of train.tar."""
    counts: dict[str, int] = {}
    with tarfile.open(CIFAR) as archive:
        for member in archive:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 3:
                continue
            label = parts[-2]
            n = counts.get(label, 0)
            if n >= per_class + 20:
                continue
            counts[label] = n + 1
            split = "train" if n < per_class else "val"
            target = folder / split / label / parts[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.extractfile(member).read())  # type: ignore[union-attr]
            if len(counts) == 10 and all(v >= per_class + 20 for v in counts.values()):
                break
    return folder


def measure(workload: str, policy: str, busy: bool, args: argparse.Namespace, data: str) -> dict:
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        time.sleep(0.5 if busy else 0)
        command = [sys.executable, __file__, "--child", "--workload", workload, "--policy", policy,
                   "--data", data, "--steps", str(args.steps), "--calls", str(args.calls)]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        env.pop("OMP_NUM_THREADS", None)
        out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
        return json.loads(out.strip().splitlines()[-1])
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps (digits)")
    parser.add_argument("--calls", type=int, default=8, help="timed inference calls of batch 32")
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--policy", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    results: dict[tuple[str, str, bool], list[float]] = {}
    threads: dict[tuple[str, str, bool], int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = str(cifar_subset(Path(tmp))) if "train cifar10 fast" in args.workloads else ""
        for round_index in range(args.rounds):
            for workload in args.workloads:
                for policy in POLICIES:
                    for busy in ((False, True) if round_index % 2 == 0 else (True, False)):
                        record = measure(workload, policy, busy, args, data)
                        key = (workload, policy, busy)
                        results.setdefault(key, []).append(record["images_per_second"])
                        threads[key] = record["threads_at_start"]
                        print(f"{workload}, {policy}, {'busy' if busy else 'quiet'}: "
                              f"{record['images_per_second']:.1f} images/s "
                              f"({record['threads_at_start']} threads at start)", flush=True)
    rate = {key: statistics.median(values) for key, values in results.items()}
    lines = ["# Throughput on a shared CPU: the old thread policy against the new", "",
             f"Command: `python benchmarks/shared_cpu.py --rounds {args.rounds} --steps {args.steps} "
             f"--calls {args.calls}`. Machine: {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} CPUs. Busy: one `python -c \"while True: pass\"` beside the "
             "workload. Images/s, medians over rounds.", "",
             "| workload | policy | threads quiet / busy | quiet | busy | busy / quiet "
             "| quiet vs all cores |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for workload in args.workloads:
        for policy in POLICIES:
            quiet, busy = rate[(workload, policy, False)], rate[(workload, policy, True)]
            old_quiet = rate[(workload, "all cores", False)]
            lines.append(f"| {workload} | {policy} | {threads[(workload, policy, False)]} / "
                         f"{threads[(workload, policy, True)]} | {quiet:.1f} | {busy:.1f} | "
                         f"{busy / quiet:.2f}x | {quiet / old_quiet:.2f}x |")
    write_report(args.output, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
