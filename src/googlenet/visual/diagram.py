"""The architecture drawn from the table: the whole network in the manner of the paper's Figure 3,
and one Inception module in the manner of Figure 2 (b), beside the naive module of Figure 2 (a).

Every box, filter count, output size, parameter count and multiply-add comes from
`arch.table.layer_plan` and `arch.costs`, never from a hand-drawn picture: a change to the
table changes the drawing. Pure Python and matplotlib: nothing here imports torch, so
`googlenet diagram` starts fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

from googlenet.arch.cost_report import render_module_comparison
from googlenet.arch.costs import (
    Cost,
    NetworkCost,
    RowCost,
    aux_cost,
    conv_multiply_adds,
    conv_unit_cost,
    module_comparison,
    network_cost,
)
from googlenet.arch.table import (
    AUX,
    PAPER_INPUT_SIZE,
    PAPER_NUM_CLASSES,
    ConvLayer,
    DropoutLayer,
    GlobalAvgPoolLayer,
    InceptionLayer,
    InceptionRow,
    Layer,
    LinearLayer,
    LRNLayer,
    MaxPoolLayer,
    Variant,
    get_variant,
    inception_key,
)

A4_PORTRAIT = (8.27, 11.69)  # inches: the whole network must be legible on one page
# The paper's Figure 3 colours: convolutions blue, pooling red, normalisation and concatenation
# green, classifiers yellow (lighter here, so that black text stays legible in print).
COLOURS = {"conv": "#bcd3f2", "reduce": "#e4eefb", "pool": "#f6c7c4", "norm": "#cfe9c8",
           "concat": "#cfe9c8", "head": "#fbe3a0", "input": "#e6e6e6"}
LEGEND = (("conv", "convolution (+ ReLU)"), ("reduce", "1x1 convolution: reduction, projection"),
          ("pool", "pooling"), ("norm", "normalisation, concatenation"), ("head", "classifier"))
FONT = 6.5  # points: legible on A4


@dataclass(frozen=True)
class Frame:
    """A box on the page, in inches."""

    x: float
    y: float
    width: float
    height: float

    @property
    def center(self) -> float:
        return self.x + self.width / 2


def short(value: int) -> str:
    """9472 -> '9.5K', 118013952 -> '118M', 1.6e9 -> '1.59G'."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            number = value / scale
            return f"{number:#.3g}{suffix}" if number < 100 else f"{number:.0f}{suffix}"
    return str(value)


def shape(size: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in size)


def cost_text(cost: Cost) -> str:
    return f"{short(cost.params)} params · {short(cost.ops)} MACs" if cost.params else "no params"


def page_axes(figure: Figure, width: float, height: float, downward: bool) -> Axes:
    """Axes that fill the figure, one unit an inch; y grows down the page when `downward`."""
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim((height, 0) if downward else (0, height))
    ax.axis("off")
    return ax


def box(ax: Axes, frame: Frame, text: str, kind: str, size: float = FONT, bold: bool = False) -> Frame:
    ax.add_patch(FancyBboxPatch((frame.x, frame.y), frame.width, frame.height,
                                boxstyle="round,pad=0,rounding_size=0.03", linewidth=0.6,
                                edgecolor="#333333", facecolor=COLOURS[kind]))
    ax.text(frame.center, frame.y + frame.height / 2, text, ha="center", va="center", fontsize=size,
            fontweight="bold" if bold else "normal", linespacing=1.1)
    return frame


def arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=5, linewidth=0.6,
                                 color="#333333", shrinkA=0, shrinkB=0))


# --- Figure 3: the whole network, read down three columns.

COLUMN_X = (0.35, 3.0, 5.65)
COLUMN_WIDTH = 2.3
BOX_WIDTH = 1.3
BOX_HEIGHT = 0.24
GAP = 0.1  # between consecutive boxes: room for an arrow
MODULE_ROW = 0.3  # one row of branch boxes in an Inception module
TOP = 1.15
BOX_X = (COLUMN_WIDTH - BOX_WIDTH) / 2  # simple rows are centred in their column


def layer_label(layer: Layer, input_hw: tuple[int, int]) -> tuple[str, str]:
    """(text, colour kind) of one box of a simple row, named as Table 1 names its rows."""
    if isinstance(layer, ConvLayer):
        kind = "reduce" if layer.kernel == 1 else "conv"
        return f"convolution {layer.kernel}x{layer.kernel}/{layer.stride}, {layer.out_channels}", kind
    if isinstance(layer, MaxPoolLayer):
        return f"max pool {layer.kernel}x{layer.kernel}/{layer.stride}", "pool"
    if isinstance(layer, GlobalAvgPoolLayer):
        return f"avg pool {input_hw[0]}x{input_hw[1]}/1", "pool"
    if isinstance(layer, LRNLayer):
        return "local response norm", "norm"
    if isinstance(layer, DropoutLayer):
        return f"dropout ({layer.p:.0%})", "head"
    assert isinstance(layer, LinearLayer)
    return f"linear, {layer.out_features}", "head"


def stage(row_cost: RowCost) -> str | None:
    row = row_cost.planned.row
    return inception_key(row)[0] if isinstance(row, InceptionRow) else None


def columns(network: NetworkCost) -> list[list[RowCost]]:
    """The rows in three columns: a new column at the first Inception module of stages 4 and 5."""
    split: list[list[RowCost]] = [[]]
    seen: set[str] = set()
    for row_cost in network.rows:
        key = stage(row_cost)
        if key is not None and key not in seen:
            if seen:
                split.append([])
            seen.add(key)
        split[-1].append(row_cost)
    return split


class NetworkDrawing:
    """Draws the rows of one column after another, top to bottom, joined by arrows."""

    def __init__(self, ax: Axes, network: NetworkCost) -> None:
        self.ax, self.network = ax, network
        taps = [r for r in network.rows if r.planned.row.name in AUX.taps]
        self.aux_of = {r.planned.row.name: i + 1 for i, r in enumerate(taps)}

    def column(self, rows: list[RowCost], x: float, y: float, input_hw: tuple[int, int],
               previous: Frame | None) -> tuple[float, tuple[int, int]]:
        """Draw `rows` from `y` down; the column's end and the last row's output height and width."""
        for row_cost in rows:
            if isinstance(row_cost.planned.row, InceptionRow):
                first, last = self.module(row_cost, x, y)
            else:
                first, last = self.simple_row(row_cost, x, y, input_hw)
            if previous is not None:
                arrow(self.ax, (previous.center, previous.y + previous.height), (first.center, first.y))
            previous, y, input_hw = last, last.y + last.height + GAP, row_cost.output_size[:2]
        return y, input_hw

    def simple_row(self, row_cost: RowCost, x: float, y: float,
                   input_hw: tuple[int, int]) -> tuple[Frame, Frame]:
        frames = []
        x += BOX_X
        layers = row_cost.planned.layers or ()
        for layer in layers:
            text, kind = layer_label(layer, input_hw)
            frames.append(box(self.ax, Frame(x, y, BOX_WIDTH, BOX_HEIGHT), text, kind))
            if len(frames) > 1:
                arrow(self.ax, (x + BOX_WIDTH / 2, frames[-2].y + BOX_HEIGHT), (x + BOX_WIDTH / 2, y))
            y += BOX_HEIGHT + GAP
        if not layers:  # softmax: applied by the loss, drawn as the paper draws it
            frames.append(box(self.ax, Frame(x, y, BOX_WIDTH, BOX_HEIGHT), "softmax", "head"))
        middle = (frames[0].y + frames[-1].y + BOX_HEIGHT) / 2
        note = shape(row_cost.output_size)
        if row_cost.cost.params:
            note += f"\n{short(row_cost.cost.params)} params\n{short(row_cost.cost.ops)} MACs"
        self.ax.text(x + BOX_WIDTH + 0.08, middle, note, va="center", fontsize=FONT - 0.5,
                     color="#444444", linespacing=1.05)
        return frames[0], frames[-1]

    def module(self, row_cost: RowCost, x: float, y: float) -> tuple[Frame, Frame]:
        """Figure 2 (b) in small: a header, the four branches, the concatenation."""
        row = row_cost.planned.row
        layer = row_cost.planned.layers[0]
        assert isinstance(row, InceptionRow) and isinstance(layer, InceptionLayer)
        ax, k = self.ax, layer.branch3_kernel
        header = Frame(x, y, COLUMN_WIDTH, 0.3)
        ax.text(x, y + 0.1, row.name, fontsize=FONT + 1, fontweight="bold", va="center")
        ax.text(x + COLUMN_WIDTH, y + 0.1, shape(row_cost.output_size), fontsize=FONT + 0.5,
                va="center", ha="right", fontweight="bold")
        tap = self.aux_of.get(row.name)
        ax.text(x, y + 0.24, cost_text(row_cost.cost) + (f" · feeds aux head {tap}" if tap else ""),
                fontsize=FONT - 0.5, va="center", color="#444444")
        width, gap = (COLUMN_WIDTH - 3 * 0.05) / 4, 0.05
        top = y + 0.34
        lower = top + MODULE_ROW + 0.06
        cells = (  # (column, row, text, kind): branch 1 spans both rows
            (0, None, f"1x1\n{row.c1x1}", "reduce"),
            (1, 0, f"1x1 reduce\n{row.c3x3_reduce}", "reduce"), (1, 1, f"3x3\n{row.c3x3}", "conv"),
            (2, 0, f"1x1 reduce\n{row.c5x5_reduce}", "reduce"), (2, 1, f"{k}x{k}\n{row.c5x5}", "conv"),
            (3, 0, "max pool\n3x3/1", "pool"), (3, 1, f"1x1 proj\n{row.pool_proj}", "reduce"),
        )
        for column, level, text, kind in cells:
            cx = x + column * (width + gap)
            if level is None:
                frame = Frame(cx, top, width, 2 * MODULE_ROW + 0.06)
            else:
                frame = Frame(cx, top if level == 0 else lower, width, MODULE_ROW)
            box(ax, frame, text, kind, size=FONT - 0.5)
            if level == 1:
                arrow(ax, (frame.center, top + MODULE_ROW), (frame.center, lower))
        concat = box(ax, Frame(x, lower + MODULE_ROW + 0.06, COLUMN_WIDTH, 0.16),
                     "filter concatenation", "concat", size=FONT - 0.5)
        return header, concat

    def aux_head(self, number: int, x: float, y: float) -> float:
        """Sec. 5: an auxiliary classifier, with its own cost; training only."""
        tap_row = [r for r in self.network.rows if r.planned.row.name == AUX.taps[number - 1]][0]
        variant = self.network.variant
        cost = aux_cost(tap_row.output_size[2], self.network.num_classes, variant)
        self.ax.text(x, y, f"aux head {number}, on {tap_row.planned.row.name}\n(training only; "
                     f"{cost_text(cost)})", fontsize=FONT, va="top", fontweight="bold", linespacing=1.1)
        y += 0.36
        pooled = AUX.pooled_size
        pool = (f"avg pool {AUX.pool_kernel}x{AUX.pool_kernel}/{AUX.pool_stride}"
                if variant.aux_pool == "paper" else f"adaptive avg pool to {pooled}x{pooled}")
        steps = ((pool, "pool"), (f"convolution 1x1/1, {AUX.conv_channels}", "reduce"),
                 (f"linear, {AUX.fc_units} (+ ReLU)", "head"),
                 (f"dropout ({variant.aux_dropout:.0%})", "head"),
                 (f"linear, {self.network.num_classes}", "head"), ("softmax (loss x 0.3)", "head"))
        previous = None
        for text, kind in steps:
            frame = box(self.ax, Frame(x + BOX_X, y, BOX_WIDTH, 0.2), text, kind, size=FONT - 0.5)
            if previous is not None:
                arrow(self.ax, (previous.center, previous.y + previous.height), (frame.center, frame.y))
            previous, y = frame, y + 0.2 + 0.07
        return y


def network_figure(variant: Variant | str, input_size: int = PAPER_INPUT_SIZE,
                   num_classes: int = PAPER_NUM_CLASSES) -> Figure:
    """The whole network on one A4 page, in the manner of the paper's Figure 3."""
    variant = get_variant(variant)
    network = network_cost(variant, input_size, num_classes)
    figure = Figure(figsize=A4_PORTRAIT)
    ax = page_axes(figure, *A4_PORTRAIT, downward=True)
    ax.text(COLUMN_X[0], 0.3, f"GoogLeNet, variant {variant.name} ({variant.description})",
            fontsize=10, fontweight="bold", va="center")
    ax.text(COLUMN_X[0], 0.55, f"input {input_size}x{input_size}x3 · {num_classes} classes · "
            f"{short(network.total.params)} params, {short(network.total.ops)} multiply-adds (MACs) "
            "without the auxiliary heads · read down each column", fontsize=FONT + 0.5, va="center")
    drawing = NetworkDrawing(ax, network)
    hw, end = (input_size, input_size), TOP
    for index, (rows, x) in enumerate(zip(columns(network), COLUMN_X)):
        if index == 0:
            previous: Frame | None = box(ax, Frame(x + BOX_X, TOP, BOX_WIDTH, BOX_HEIGHT),
                                         f"input {input_size}x{input_size}x3", "input")
            y = TOP + BOX_HEIGHT + GAP
        else:
            ax.text(x, TOP - 0.1, "(continued)", fontsize=FONT - 0.5, color="#666666", style="italic")
            previous, y = None, TOP
        end, hw = drawing.column(rows, x, y, hw, previous)
    y = end + 0.2
    for number in range(1, len(AUX.taps) + 1):
        y = drawing.aux_head(number, COLUMN_X[-1], y) + 0.15
    add_legend(ax, COLUMN_X[0] - 0.1, 0.68)
    return figure


def add_legend(ax: Axes, x: float, y: float) -> None:
    handles = [Patch(facecolor=COLOURS[kind], edgecolor="#333333", linewidth=0.6, label=label)
               for kind, label in LEGEND]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(x, y), bbox_transform=ax.transData,
              ncol=len(handles), fontsize=FONT, frameon=False, handlelength=1.2, columnspacing=1.0)


# --- Figure 2: one Inception module, with dimension reductions (b) and naive (a).

PANEL = (5.6, 3.6)  # inches
CELL_WIDTH, CELL_HEIGHT = 1.2, 0.6
LEVELS = (0.2, 1.0, 1.9, 2.8)  # previous layer, first row, second row, concatenation


@dataclass(frozen=True)
class Cell:
    """One box of Figure 2: its branch (0-3), level (1 or 2), text and colour."""

    branch: int
    level: int
    text: str
    kind: str


def unit_text(name: str, kernel: int, channels_in: int, channels_out: int, hw: tuple[int, int],
              variant: Variant) -> str:
    cost = conv_unit_cost(channels_in, channels_out, kernel, hw, variant)
    return f"{name}\n{shape((*hw, channels_out))}\n{short(cost.params)} params\n{short(cost.ops)} MACs"


def reduced_cells(row: InceptionRow, layer: InceptionLayer, input_size: tuple[int, int, int],
                  variant: Variant) -> list[Cell]:
    """Figure 2 (b): 1x1 reductions before the 3x3 and 5x5, a 1x1 projection after the pool."""
    h, w, c = input_size
    k = layer.branch3_kernel
    unit = lambda name, kk, cin, cout: unit_text(name, kk, cin, cout, (h, w), variant)  # noqa: E731
    return [
        Cell(0, 1, unit(f"1x1 convolutions, {row.c1x1}", 1, c, row.c1x1), "reduce"),
        Cell(1, 1, unit(f"1x1 reduce, {row.c3x3_reduce}", 1, c, row.c3x3_reduce), "reduce"),
        Cell(1, 2, unit(f"3x3 convolutions, {row.c3x3}", 3, row.c3x3_reduce, row.c3x3), "conv"),
        Cell(2, 1, unit(f"1x1 reduce, {row.c5x5_reduce}", 1, c, row.c5x5_reduce), "reduce"),
        Cell(2, 2, unit(f"{k}x{k} convolutions, {row.c5x5}", k, row.c5x5_reduce, row.c5x5), "conv"),
        Cell(3, 1, f"3x3 max pooling, stride 1\n{shape((h, w, c))}\nno params\n", "pool"),
        Cell(3, 2, unit(f"1x1 projection, {row.pool_proj}", 1, c, row.pool_proj), "reduce"),
    ]


def naive_cells(row: InceptionRow, layer: InceptionLayer, input_size: tuple[int, int, int]) -> list[Cell]:
    """Figure 2 (a): every branch on the full input; the pool passes all input channels."""
    h, w, c = input_size
    k = layer.branch3_kernel

    def conv(kernel: int, outputs: int) -> str:
        ops = conv_multiply_adds(h, w, c, kernel, outputs)
        return f"{kernel}x{kernel} convolutions, {outputs}\n{shape((h, w, outputs))}\n\n{short(ops)} MACs"

    return [Cell(0, 2, conv(1, row.c1x1), "reduce"), Cell(1, 2, conv(3, row.c3x3), "conv"),
            Cell(2, 2, conv(k, row.c5x5), "conv"),
            Cell(3, 2, f"3x3 max pooling, stride 1\n{shape((h, w, c))}\nall {c} channels\npass through",
                 "pool")]


def draw_panel(ax: Axes, x0: float, title: str, cells: list[Cell], input_size: tuple[int, int, int],
               output_channels: int) -> None:
    """Bottom to top, as the paper draws Figure 2: previous layer, branches, concatenation."""
    h, w, c = input_size
    span = 4 * CELL_WIDTH + 3 * 0.15
    ax.text(x0, PANEL[1] - 0.05, title, fontsize=8, fontweight="bold", va="top")
    previous = box(ax, Frame(x0 + span / 2 - 0.9, LEVELS[0], 1.8, 0.4),
                   f"previous layer\n{shape((h, w, c))}", "input", size=7)
    concat = box(ax, Frame(x0, LEVELS[3], span, 0.4),
                 f"filter concatenation\n{shape((h, w, output_channels))}", "concat", size=7)
    for branch in range(4):
        column = [cell for cell in cells if cell.branch == branch]
        cx = x0 + branch * (CELL_WIDTH + 0.15)
        below = previous
        for cell in sorted(column, key=lambda cell: cell.level):
            frame = box(ax, Frame(cx, LEVELS[cell.level], CELL_WIDTH, CELL_HEIGHT), cell.text, cell.kind,
                        size=6.5)
            arrow(ax, (below.center if below is previous else frame.center, below.y + below.height),
                  (frame.center, frame.y))
            below = frame
        arrow(ax, (below.center, below.y + below.height), (below.center, concat.y))


def module_figure(key: str, variant: Variant | str, input_size: int = PAPER_INPUT_SIZE,
                  naive: bool = False) -> Figure:
    """Inception module `key` ("4a") at its place in the network, as Figure 2 (b) with its numbers;
    with `naive`, Figure 2 (a) beside it and the comparison `googlenet cost --module` prints."""
    variant = get_variant(variant)
    comparison = module_comparison(key, variant, input_size)  # ValueError names the valid keys
    network = network_cost(variant, input_size)
    row_cost = [r for r in network.rows if r.planned.row.name == comparison.name][0]
    row, layer = row_cost.planned.row, row_cost.planned.layers[0]
    assert isinstance(row, InceptionRow) and isinstance(layer, InceptionLayer)
    panels = 2 if naive else 1
    height = PANEL[1] + (1.5 if naive else 0)
    figure = Figure(figsize=(PANEL[0] * panels, height))
    ax = page_axes(figure, PANEL[0] * panels, height, downward=False)
    if naive:
        ax.set_ylim(-1.5, PANEL[1])
        draw_panel(ax, 0.15, f"(a) {row.name}, naive version: {short(comparison.naive_ops)} MACs",
                   naive_cells(row, layer, comparison.input_size), comparison.input_size,
                   comparison.naive_channels)
        ax.text(0.15, -0.05, render_module_comparison(comparison), fontsize=6.5, family="monospace",
                va="top")
    draw_panel(ax, 0.15 + (PANEL[0] if naive else 0),
               f"{'(b) ' if naive else ''}{row.name} with dimension reductions: "
               f"{cost_text(row_cost.cost)}",
               reduced_cells(row, layer, comparison.input_size, variant), comparison.input_size,
               row.out_channels)
    return figure
