"""The same .onnx files on ONNX Runtime and on OpenVINO, side by side: the measurement behind
`--backend auto`'s rule for .onnx files (inference/backends.py, `runs_on`).

    python benchmarks/auto_backend.py     # writes benchmarks/results/auto_backend.md

Files as `googlenet export` and `googlenet quantize` write them (bn and paper at 224x224, fp32,
and int8 QDQ calibrated on generated images; random weights: speed does not depend on them).
Rows are timed in interleaved rounds, medians of each.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from report import write_report

from googlenet.deploy.export import export_onnx, generated_images, inference_model
from googlenet.deploy.quantize import quantize_onnx
from googlenet.deploy.timing import interleaved_medians
from googlenet.deploy.zoo import ours
from googlenet.inference.backends import OnnxBackend, OpenVinoBackend

RESULTS = Path(__file__).parent / "results" / "auto_backend.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = {32: np.random.randn(32, 3, 224, 224).astype(np.float32)}
    batches[1] = batches[32][:1].copy()
    keys, runners = [], []
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for variant in ("bn", "paper"):
            files[f"{variant} fp32"] = Path(tmp) / f"{variant}.onnx"
            export_onnx(inference_model(ours(variant)), files[f"{variant} fp32"], 224, None, 17, {})
            files[f"{variant} int8"] = quantize_onnx(
                files[f"{variant} fp32"], Path(tmp) / f"{variant}.int8.onnx", generated_images(32, 224))
        for name, path in files.items():
            for backend in (OnnxBackend(path, args.threads), OpenVinoBackend(path, args.threads)):
                for batch, x in batches.items():
                    keys.append((name, backend.name, batch))
                    runners.append(lambda backend=backend, x=x: backend.run_numpy(x))
        seconds = dict(zip(keys, interleaved_medians(runners, 1, args.repeats)))
    lines = ["# .onnx files on ONNX Runtime and on OpenVINO", "",
             f"Command: `python benchmarks/auto_backend.py --repeats {args.repeats}`. Machine: "
             f"{platform.processor() or platform.machine()}, {args.threads} threads. Images/s.", "",
             "| file | batch | onnxruntime | openvino | openvino / onnxruntime |",
             "| --- | --- | --- | --- | --- |"]
    for name in files:
        for batch in batches:
            ort, ov = (batch / seconds[(name, b, batch)] for b in ("onnxruntime", "openvino"))
            lines.append(f"| {name} | {batch} | {ort:.1f} | {ov:.1f} | {ov / ort:.2f}x |")
    write_report(args.output, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
