"""The faithful `paper` variant against `bn` in ONNX Runtime, fp32 and int8, in one run.

    python benchmarks/paper_variant_speed.py      # writes benchmarks/results/paper_variant_speed.md

Rows: `bn` (batch norm folded); `paper` exported with ONNX's own LRN operator (how
googlenet 0.1 exported it); `paper` as `googlenet export` writes it now (FastLRN: an
average pool and elementwise ops); and both variants in int8 (ONNX Runtime's QDQ,
per-channel, calibrated on generated images). Random weights at 224x224: speed does not
depend on them. Rows are timed in interleaved rounds, medians of each.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from report import write_report

from googlenet.deploy.export import OperatorLRN, export_onnx, generated_images, inference_model, swap_lrn
from googlenet.deploy.quantize import quantize_onnx
from googlenet.inference.backends import OnnxBackend
from googlenet.model.network import build_network

RESULTS = Path(__file__).parent / "results" / "paper_variant_speed.md"


def models(folder: Path, size: int) -> dict[str, Path]:
    torch.manual_seed(0)
    bn = inference_model(build_network("bn", aux_logits=False).eval())
    paper = inference_model(build_network("paper", aux_logits=False).eval())
    paths = {"bn fp32": folder / "bn.onnx", "paper fp32, ONNX LRN operator": folder / "paper_op.onnx",
             "paper fp32, FastLRN (googlenet export)": folder / "paper.onnx"}
    export_onnx(bn, paths["bn fp32"], size, None, 17, {})
    export_onnx(paper, paths["paper fp32, FastLRN (googlenet export)"], size, None, 17, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(swap_lrn(paper, OperatorLRN), (torch.zeros(1, 3, size, size),),
                          str(paths["paper fp32, ONNX LRN operator"]), dynamo=False, opset_version=17,
                          input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    calibration = generated_images(32, size)
    paths["bn int8"] = quantize_onnx(paths["bn fp32"], folder / "bn.int8.onnx", calibration)
    paths["paper int8, FastLRN"] = quantize_onnx(paths["paper fp32, FastLRN (googlenet export)"],
                                                 folder / "paper.int8.onnx", calibration)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=4, help="timed calls per row and round")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    times: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = models(Path(tmp), args.input_size)
        backends = {name: OnnxBackend(path, args.threads) for name, path in paths.items()}
        inputs = {batch: torch.randn(batch, 3, args.input_size, args.input_size).numpy() for batch in (32, 1)}
        for _ in range(args.rounds):
            for name, backend in backends.items():
                for batch, x in inputs.items():
                    backend.run_numpy(x)  # untimed: the previous row's threads settle
                    for _ in range(args.repeats):
                        start = time.perf_counter()
                        backend.run_numpy(x)
                        times.setdefault((name, batch), []).append(time.perf_counter() - start)
    rate = {key: key[1] / statistics.median(values) for key, values in times.items()}
    lines = ["# The paper variant against bn, ONNX Runtime", "",
             f"Command: `python benchmarks/paper_variant_speed.py --rounds {args.rounds}`. Machine: "
             f"{platform.processor() or platform.machine()}, {args.threads} threads; torch "
             f"{torch.__version__}; {args.input_size}x{args.input_size}.", "",
             "| model | batch 32 images/s | vs bn | batch 1 images/s | vs bn |",
             "| --- | --- | --- | --- | --- |"]
    for name in paths:
        base = "bn int8" if "int8" in name else "bn fp32"
        lines.append(f"| {name} | {rate[(name, 32)]:.1f} | {rate[(name, 32)] / rate[(base, 32)]:.2f}x | "
                     f"{rate[(name, 1)]:.1f} | {rate[(name, 1)] / rate[(base, 1)]:.2f}x |")
    write_report(args.output, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
