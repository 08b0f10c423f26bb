"""Sec. 4's case for 1x1 reductions, printed from the cost code in costs.py."""

from __future__ import annotations

import json
from dataclasses import asdict

from googlenet.arch.costs import ModuleComparison, ReductionComparison
from googlenet.formatting import millions, render_table


def reduction_record(c: ReductionComparison) -> dict:
    return {**asdict(c), "naive_ops": c.naive, "reduce_ops": c.reduce_ops,
            "conv_ops": c.conv_ops, "reduced_ops": c.reduced, "saving": c.saving}


def render_reduction(c: ReductionComparison, fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps(reduction_record(c), indent=2)
    hw = f"{c.height}x{c.width}"
    k = f"{c.kernel}x{c.kernel}"
    rows = [
        ["naive", f"{hw}x{c.out_channels} x {k}x{c.in_channels}", millions(c.naive)],
        [f"1x1 reduce to {c.reduce}", f"{hw}x{c.reduce} x 1x1x{c.in_channels}",
         millions(c.reduce_ops)],
        [f"then {k}", f"{hw}x{c.out_channels} x {k}x{c.reduce}", millions(c.conv_ops)],
        ["reduced total", "", millions(c.reduced)],
    ]
    title = (f"A {k} convolution from {hw}x{c.in_channels} to {c.out_channels} outputs, "
             f"with and without a 1x1 reduction to {c.reduce} channels (Sec. 4's argument):")
    table = render_table(["", "output x filter", "multiplies"], rows, fmt)
    return f"{title}\n\n{table}\n\nThe reduction saves {c.saving:.0%} of the multiplies."


def render_module_comparison(c: ModuleComparison, fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps(asdict(c), indent=2)
    rows = [["naive (Figure 2a)", str(c.naive_channels), millions(c.naive_ops)],
            ["with 1x1 reductions (Figure 2b)", str(c.reduced_channels), millions(c.reduced_ops)]]
    h, w, ch = c.input_size
    title = f"{c.name} on a {h}x{w}x{ch} input:"
    note = ("The naive module runs every branch on the full input and its pool branch passes all "
            f"{ch} input channels through, so its output grows to {c.naive_channels} channels; "
            f"the reductions cut the multiply-adds by {1 - c.reduced_ops / c.naive_ops:.0%}.")
    table = render_table(["module", "output channels", "multiply-adds"], rows, fmt)
    return f"{title}\n\n{table}\n\n{note}"
