"""SIGKILL at random moments, then resume: do the resumed runs end bit-identical to an
uninterrupted run?

    python benchmarks/faults.py --trials 10            # writes benchmarks/results/faults.md

One uninterrupted run is the reference. Each trial starts the same run, kills it with
SIGKILL after a random delay (anywhere from start-up to the last checkpoint write, so some
kills land mid-write), then runs `googlenet train --resume` until the run completes (a kill
before the first checkpoint means starting again). The final last.pt's weights, averaged
weights, optimizer state and progress are compared with the reference's, tensor by tensor.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from googlenet.training.checkpoint import load_checkpoint

RESULTS = Path(__file__).parent / "results" / "faults.md"


def command(run: Path, args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "googlenet", "train", "--output-dir", str(run), "--variant", "bn",
            "--epochs", str(args.epochs), "--quiet", "--workers", "0", "--seed", "3"]


def flatten(value, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor and number of a checkpoint's training state, by its path."""
    if isinstance(value, torch.Tensor):
        return {prefix: value}
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}.{key}").items()}
    if isinstance(value, (list, tuple)):
        return {k: v for i, item in enumerate(value) for k, v in flatten(item, f"{prefix}[{i}]").items()}
    return {prefix: torch.tensor(value)} if isinstance(value, (int, float)) else {}


def training_state(path: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)
    return flatten({key: state[key] for key in ("model", "ema", "optimizer", "progress")})


def differences(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> int:
    if a.keys() != b.keys():
        return len(a.keys() ^ b.keys())
    return sum(not torch.equal(a[k], b[k]) for k in a)


def trial(run: Path, args: argparse.Namespace, delay: float) -> int:
    """Kill a run after `delay` seconds, then resume it to the end; the resumes it took."""
    process = subprocess.Popen(command(run, args), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumes = 0
    while True:
        resume = ["--resume", str(run)] if (run / "last.pt").exists() else []
        if not resume:
            shutil.rmtree(run, ignore_errors=True)  # killed before its first checkpoint
        base = command(run, args)
        argv = base[:4] + resume if resume else base
        result = subprocess.run(argv, capture_output=True, text=True)
        resumes += bool(resume)
        if result.returncode == 0:
            return resumes
        if resumes > 5:
            raise RuntimeError(f"resume keeps failing: {result.stderr[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        reference_run = Path(tmp) / "reference"
        start = time.perf_counter()
        subprocess.run(command(reference_run, args), check=True, capture_output=True)
        duration = time.perf_counter() - start
        reference = training_state(reference_run / "last.pt")
        rows = []
        for number in range(1, args.trials + 1):
            run = Path(tmp) / f"trial{number}"
            delay = rng.uniform(0.5, duration)
            resumes = trial(run, args, delay)
            differing = differences(reference, training_state(run / "last.pt"))
            rows.append((number, delay, resumes, differing))
            print(f"trial {number}: killed after {delay:.1f} s, {resumes} resume(s), "
                  f"{differing} of {len(reference)} tensors differ", flush=True)
    identical = sum(row[3] == 0 for row in rows)
    lines = [
        "# SIGKILL at random moments, then resume", "",
        f"Command: `python benchmarks/faults.py --trials {args.trials} --epochs {args.epochs} "
        f"--seed {args.seed}`; an uninterrupted run took {duration:.1f} s.", "",
        f"**{identical} of {len(rows)} resumed runs ended bit-identical** to the uninterrupted one "
        f"(weights, averaged weights, optimizer state, progress: {len(reference)} tensors).", "",
        "A trial with 0 resumes was killed before its first checkpoint and started again.", "",
        "| trial | killed after (s) | resumes | tensors that differ |", "| --- | --- | --- | --- |",
        *(f"| {n} | {d:.1f} | {r} | {x} |" for n, d, r, x in rows), ""]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print(f"{identical} of {len(rows)} bit-identical; table in {args.output}")
    return 0 if identical == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
