"""Table 1 as computed from the model's table, beside the figures the paper prints."""

from __future__ import annotations

import json
from typing import Any

from googlenet.arch.costs import NetworkCost, RowCost
from googlenet.arch.table import (
    PAPER_INPUT_SIZE,
    PAPER_NUM_CLASSES,
    ConvLayer,
    ConvRow,
    DropoutLayer,
    GlobalAvgPoolLayer,
    InceptionRow,
    MaxPoolLayer,
)
from googlenet.formatting import render_table, thousands

# The paper's figures are rounded, seem to count K as 1024 and to leave out
# biases (together worth up to ~3%): only a larger gap is a real disagreement.
PAPER_TOLERANCE = 0.05

FILTER_COLUMNS = ("#1x1", "#3x3 reduce", "#3x3", "#5x5 reduce", "#5x5", "pool proj")


def parse_printed(value: str | None) -> int | None:
    """'2.7K' -> 2700, '1072K' -> 1072000, '34M' -> 34000000."""
    if value is None:
        return None
    scale = {"K": 10**3, "M": 10**6}[value[-1]]
    return round(float(value[:-1]) * scale)


def differs(computed: int, printed: int | None) -> bool | None:
    if printed is None:
        return None
    return abs(computed - printed) > PAPER_TOLERANCE * printed


def patch(row_cost: RowCost, input_hw: tuple[int, int]) -> str:
    """'7x7/2' as the paper writes it, for the layer as this variant builds it."""
    layers = row_cost.planned.layers
    if not layers:
        return ""
    if isinstance(row_cost.planned.row, ConvRow):
        conv = [layer for layer in layers if isinstance(layer, ConvLayer)][-1]
        return f"{conv.kernel}x{conv.kernel}/{conv.stride}"
    if isinstance(layers[0], MaxPoolLayer):
        return f"{layers[0].kernel}x{layers[0].kernel}/{layers[0].stride}"
    if isinstance(layers[0], GlobalAvgPoolLayer):
        return f"{input_hw[0]}x{input_hw[1]}/1 (global)"
    return ""


def filters(row_cost: RowCost) -> dict[str, int | None]:
    row = row_cost.planned.row
    counts: dict[str, int | None] = dict.fromkeys(FILTER_COLUMNS)
    if isinstance(row, InceptionRow):
        values = (row.c1x1, row.c3x3_reduce, row.c3x3, row.c5x5_reduce, row.c5x5, row.pool_proj)
        counts.update(zip(FILTER_COLUMNS, values))
    elif isinstance(row, ConvRow) and row.reduce:
        counts.update({"#3x3 reduce": row.reduce, "#3x3": row.out_channels})
    return counts


def row_record(row_cost: RowCost, input_hw: tuple[int, int], compare: bool) -> dict[str, Any]:
    row = row_cost.planned.row
    paper_params, paper_ops = parse_printed(row.printed.params), parse_printed(row.printed.ops)
    dropout = [layer for layer in row_cost.planned.layers if isinstance(layer, DropoutLayer)]
    return {
        "name": f"dropout ({dropout[0].p:.0%})" if dropout else row.name,
        "patch": patch(row_cost, input_hw),
        "output_size": list(row_cost.output_size),
        "depth": row_cost.depth,
        "filters": filters(row_cost),
        "params": row_cost.cost.params,
        "ops": row_cost.cost.ops,
        "paper_output_size": list(row.printed.output_size),
        "paper_params": paper_params,
        "paper_ops": paper_ops,
        "params_differ": differs(row_cost.cost.params, paper_params) if compare else None,
        "ops_differ": differs(row_cost.cost.ops, paper_ops) if compare else None,
    }


def summary_record(network: NetworkCost) -> dict[str, Any]:
    inputs = [(network.input_size, network.input_size)]
    inputs += [r.output_size[:2] for r in network.rows[:-1]]
    compare = (network.input_size == PAPER_INPUT_SIZE
               and network.num_classes == PAPER_NUM_CLASSES and network.variant.width == 1)
    return {
        "variant": network.variant.name,
        "width": network.variant.width,
        "input_size": network.input_size,
        "num_classes": network.num_classes,
        "rows": [row_record(r, input_hw, compare) for r, input_hw in zip(network.rows, inputs)],
        "total": {"params": network.total.params, "ops": network.total.ops},
        "aux": {"params": network.aux.params, "ops": network.aux.ops},
    }


def _mark(record: dict[str, Any], key: str) -> str:
    return " *" if record[key] else ""


def render_summary(network: NetworkCost, fmt: str = "text") -> str:
    record = summary_record(network)
    if fmt == "json":
        return json.dumps(record, indent=2)
    headers = ["type", "patch size/stride", "output size", "depth", *FILTER_COLUMNS,
               "params", "ops", "paper params", "paper ops"]
    rows = []
    for r, row_cost in zip(record["rows"], network.rows):
        printed = row_cost.planned.row.printed
        rows.append([r["name"], r["patch"], "x".join(map(str, r["output_size"])),
                     str(r["depth"]), *(thousands(v) for v in r["filters"].values()),
                     thousands(r["params"] or None), thousands(r["ops"] or None),
                     (printed.params or "") + _mark(r, "params_differ"),
                     (printed.ops or "") + _mark(r, "ops_differ")])
    for label, cost in (("total (without aux)", network.total),
                        ("auxiliary heads (training)", network.aux)):
        rows.append([label, *[""] * (len(headers) - 5), thousands(cost.params),
                     thousands(cost.ops), "", ""])
    title = (f"GoogLeNet, variant {network.variant.name!r} ({network.variant.description}), "
             f"input {network.input_size}x{network.input_size}, {network.num_classes} classes")
    if network.variant.width != 1:
        title += f", width {network.variant.width:g} (every filter count scaled; Sec. 7)"
    note = ("ops = multiply-adds of convolutions and linear layers. paper columns: Table 1 as "
            f"printed; * marks a printed figure more than {PAPER_TOLERANCE:.0%} away from ours.")
    if network.variant.width != 1:
        note += " The printed figures are for width 1 and are not compared."
    return "\n\n".join([title, render_table(headers, rows, fmt), note])
