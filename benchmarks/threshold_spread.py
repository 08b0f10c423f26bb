"""The spread, over seeds and thread counts, of every test threshold that depends on a trained
model: the session's digits run (tests/trained_checks.py) and what the tests measure on it.

    python benchmarks/threshold_spread.py --seeds 0 1 2 3 --threads 1 2 4
    python benchmarks/threshold_spread.py --detection --seeds 0 1 --threads 1 2   # slow: an hour

Each (seed, threads) trains the digits run as tests/conftest.py does (4 epochs, bn, fp32) with
that seed and thread count, then measures with the same thread count. The table gives each
quantity's minimum, median and maximum and the threshold the tests assert, so the margin is
visible; results/threshold_spread.md holds a run with the machine named.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch
from report import write_report
from trained_checks import (
    DIGITS_RUN,
    attribution_inside,
    channel_excitation,
    detector_learns,
    dream_gain,
)

# quantity -> (the test that asserts it, its threshold as asserted, "min": the test needs more)
THRESHOLDS = {
    "val_top1": ("tests/deploy/test_quantize.py fp32 top-1 (> 0.4)", 0.4),
    "channel_above_noise": ("tests/visual/test_visualize.py channel objective, z-score vs noise", 3.0),
    "channel_above_digits": ("tests/visual/test_visualize.py channel objective, z-score vs digits", 1.0),
    "dream_gain": ("tests/visual/test_visualize.py DeepDream energy after / before", 1.2),
    "ig_inside_corner": ("tests/visual/test_explain.py share on the digit, corner (0, 0)", 0.8),
    "ig_inside_middle": ("tests/visual/test_explain.py share on the digit, (32, 32) (slow)", 0.8),
    "int8_agreement": ("tests/deploy/test_quantize.py int8 agreement with fp32", 0.9),
    "int8_top1_kept": ("tests/deploy/test_quantize.py 1 - top-1 drop (drop <= 0.05)", 0.95),
}


def measure(seed: int, threads: int) -> dict[str, float]:
    from googlenet.artifact.build import model_from_artifact
    from googlenet.cli.main import main
    from googlenet.training.config import load_recipe, with_overrides
    from googlenet.training.loop import train
    from googlenet.weights.sources import load_artifact

    with tempfile.TemporaryDirectory() as work:
        run = Path(work) / "run"
        config = with_overrides(load_recipe("digits"), {**DIGITS_RUN, "output": str(run),
                                                         "seed": str(seed), "threads": str(threads)})
        torch.use_deterministic_algorithms(True, warn_only=True)
        result = train(config)
        torch.set_num_threads(threads)
        artifact = load_artifact(run)
        model = model_from_artifact(artifact, aux_logits=False).eval()
        above_digits, above_noise = channel_excitation(model, artifact)
        values = {"val_top1": result.best_top1, "channel_above_noise": above_noise,
                  "channel_above_digits": above_digits, "dream_gain": dream_gain(model, artifact),
                  "ig_inside_corner": attribution_inside(model, artifact, (0, 0)),
                  "ig_inside_middle": attribution_inside(model, artifact, (32, 32))}
        import contextlib
        import io

        buffer = io.StringIO()
        torch.set_num_threads(1)  # as the test does (its one_thread fixture)
        with contextlib.redirect_stdout(buffer):
            main(["quantize", "-m", str(run), "--calibration", "digits", "--images", "64",
                  "--limit", "200", "--output", str(Path(work) / "m.onnx"), "--format", "json"])
        record = json.loads(buffer.getvalue())
        values.update(int8_agreement=record["agreement"], int8_top1_kept=1 - record["top1_drop"])
    return values


DETECTION_THRESHOLDS = {
    "rcnn_ap50": ("tests/detection/test_learn.py R-CNN AP50 on 8 raccoons (slow)", 0.9),
    "faster_rcnn_ap50": ("tests/detection/test_learn.py Faster R-CNN AP50 on 8 raccoons (slow)", 0.9),
}


def measure_detection(seed: int, threads: int, methods: tuple[str, ...]) -> dict[str, float]:
    raccoon = Path(__file__).resolve().parents[2] / "shared" / "data" / "raccoon"
    values = {}
    for method in methods:
        with tempfile.TemporaryDirectory() as work:
            values[f"{method.replace('-', '_')}_ap50"] = detector_learns(raccoon, method, seed, threads,
                                                                       Path(work))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--detection", action="store_true",
                        help="the detectors' learn-at-all check instead "
                             "(results/threshold_spread_detection.md)")
    parser.add_argument("--methods", nargs="+", choices=("rcnn", "faster-rcnn"),
                        default=["rcnn", "faster-rcnn"], help="with --detection")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--from-log", type=Path, help="tabulate the JSON lines an earlier run printed")
    args = parser.parse_args()
    name = "threshold_spread_detection.md" if args.detection else "threshold_spread.md"
    out = args.out or Path(__file__).parent / "results" / name
    thresholds, measure_one = THRESHOLDS, measure
    if args.detection:
        thresholds = {k: v for k, v in DETECTION_THRESHOLDS.items()
                      if k.removesuffix("_ap50").replace("_", "-") in args.methods}
        measure_one = partial(measure_detection, methods=tuple(args.methods))
    rows: list[dict[str, float]] = [json.loads(line) for line in args.from_log.read_text().splitlines()
                                    if line.startswith("{")] if args.from_log else []
    for seed in [] if args.from_log else args.seeds:
        for threads in args.threads:
            rows.append({"seed": seed, "threads": threads, **measure_one(seed, threads)})
            print(json.dumps(rows[-1]), flush=True)
    cpu = cpu_name()
    lines = [f"# Spread of the trained-model test thresholds ({len(rows)} runs)", "",
             f"`python benchmarks/threshold_spread.py {'--detection ' if args.detection else ''}"
             f"{'--methods ' + ' '.join(args.methods) + ' ' if args.detection else ''}"
             f"--seeds {' '.join(map(str, args.seeds))} "
             f"--threads {' '.join(map(str, args.threads))}` on {cpu}, torch {torch.__version__}.", "",
             "| quantity | asserted by | min | median | max | threshold | margin (min / threshold) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, (where, threshold) in thresholds.items():
        values = [r[name] for r in rows]
        lines.append(f"| {name} | {where} | {min(values):.3f} | {statistics.median(values):.3f} | "
                     f"{max(values):.3f} | {threshold:g} | {min(values) / threshold:.2f}x |")
    names = list(thresholds)
    lines += ["", "Each run:", "", "| seed | threads | " + " | ".join(names) + " |",
              "| --- | --- | " + " | ".join("---" for _ in names) + " |"]
    lines += [f"| {r['seed']} | {r['threads']} | " + " | ".join(f"{r[n]:.3f}" for n in names) + " |"
              for r in rows]
    write_report(out, lines)


def cpu_name() -> str:
    """The CPU's model name and the vector extensions that choose PyTorch's kernels."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines()
                      if line.startswith("flags")), []))
    extensions = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return f"{model} ({', '.join(extensions) or 'no AVX2'}), {len(os.sched_getaffinity(0))} cores"


if __name__ == "__main__":
    main()
