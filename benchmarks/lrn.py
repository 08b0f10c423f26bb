"""Local response normalization (Figure 3), forward and backward: PyTorch's
nn.LocalResponseNorm against the project's (model.layers.LocalResponseNorm), in one run.

    python benchmarks/lrn.py          # writes benchmarks/results/lrn.md

The two places the `paper` variant normalizes, at 224x224: after conv1's pool (64 x 56 x 56)
and after conv2 (192 x 56 x 56), batch 32, channels-last as training runs them, with random
non-negative inputs (after a ReLU). Rows are timed in interleaved rounds, medians of each;
the largest differences from PyTorch's outputs and gradients are printed beside them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from report import write_report
from torch import nn

from googlenet.arch.table import LRN_ALPHA, LRN_BETA, LRN_K, LRN_SIZE
from googlenet.model.layers import LocalResponseNorm

RESULTS = Path(__file__).parent / "results" / "lrn.md"
SHAPES = {"after pool1": (64, 56, 56), "after conv2": (192, 56, 56)}


def step(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    y = module(x)
    (dx,) = torch.autograd.grad(y, x, grad)
    return y, dx


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    theirs = nn.LocalResponseNorm(LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K)
    ours = LocalResponseNorm(LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K)
    lines = ["# Local response normalization, forward and backward", "",
             f"Command: `python benchmarks/lrn.py --batch-size {args.batch_size}`. Machine: "
             f"{platform.processor() or platform.machine()}, {args.threads} threads; torch "
             f"{torch.__version__}; channels-last.", "",
             "| where | precision | shape | nn.LocalResponseNorm ms | ours ms | speed-up | "
             "largest output / gradient difference |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for dtype in (torch.float32, torch.bfloat16):
        precision = "fp32" if dtype == torch.float32 else "bf16 autocast"
        for where, shape in SHAPES.items():
            x = (torch.randn(args.batch_size, *shape) * 4).relu().to(dtype)
            x = x.to(memory_format=torch.channels_last).requires_grad_()
            grad = torch.randn_like(x)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                (y0, dx0), (y1, dx1) = step(theirs, x, grad), step(ours, x, grad)
                times: dict[str, list[float]] = {"theirs": [], "ours": []}
                for _ in range(args.rounds):
                    for name, module in (("theirs", theirs), ("ours", ours)):
                        start = time.perf_counter()
                        step(module, x, grad)
                        times[name].append(time.perf_counter() - start)
            t0, t1 = (1000 * statistics.median(times[k]) for k in ("theirs", "ours"))
            lines.append(f"| {where} | {precision} | {args.batch_size} x {' x '.join(map(str, shape))} | "
                         f"{t0:.1f} | {t1:.1f} | {t0 / t1:.2f}x | "
                         f"{(y0.float() - y1.float()).abs().max():.1e} / "
                         f"{(dx0.float() - dx1.float()).abs().max():.1e} |")
    write_report(args.output, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
