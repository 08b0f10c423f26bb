"""Output sizes, parameters and multiply-adds, computed from the table alone.

Ops are multiply-adds of the convolutions and linear layers, as in the
paper's Table 1; pooling, LRN, batch norm and ReLU are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from googlenet.arch.table import (
    AUX,
    PAPER_INPUT_SIZE,
    PAPER_NUM_CLASSES,
    ConvLayer,
    ConvRow,
    DropoutLayer,
    GlobalAvgPoolLayer,
    InceptionLayer,
    InceptionRow,
    Layer,
    LinearLayer,
    LinearRow,
    LRNLayer,
    MaxPoolLayer,
    PlannedRow,
    Variant,
    get_variant,
    inception_key,
    layer_plan,
)


@dataclass(frozen=True)
class Cost:
    params: int = 0
    ops: int = 0  # multiply-adds

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.ops + other.ops)


@dataclass(frozen=True)
class RowCost:
    planned: PlannedRow
    output_size: tuple[int, int, int]  # H, W, C
    depth: int  # layers with parameters, as Table 1 counts them
    cost: Cost


@dataclass(frozen=True)
class NetworkCost:
    variant: Variant
    input_size: int
    num_classes: int
    rows: tuple[RowCost, ...]
    aux: Cost  # both auxiliary heads; they exist only in training

    @property
    def total(self) -> Cost:
        return sum((r.cost for r in self.rows), Cost())


def conv_multiply_adds(out_h: int, out_w: int, in_channels: int, kernel: int,
                       out_channels: int) -> int:
    return out_h * out_w * kernel * kernel * in_channels * out_channels


def conv_unit_cost(in_channels: int, out_channels: int, kernel: int, out_hw: tuple[int, int],
                   variant: Variant) -> Cost:
    weights = kernel * kernel * in_channels * out_channels
    extra = 2 * out_channels if variant.batch_norm else out_channels  # BN scale+shift, or bias
    return Cost(weights + extra, conv_multiply_adds(*out_hw, in_channels, kernel, out_channels))


def linear_cost(in_features: int, out_features: int) -> Cost:
    return Cost(in_features * out_features + out_features, in_features * out_features)


def conv_output(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def pool_output(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """PyTorch's ceil-mode pooling size (pooling_output_shape), so shapes match the model."""
    out = (size + 2 * padding - (kernel - 1) - 1 + (stride - 1)) // stride + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def inception_cost(layer: InceptionLayer, hw: tuple[int, int], variant: Variant) -> Cost:
    row, c_in = layer.row, layer.in_channels
    units = [
        (c_in, row.c1x1, 1),
        (c_in, row.c3x3_reduce, 1),
        (row.c3x3_reduce, row.c3x3, 3),
        (c_in, row.c5x5_reduce, 1),
        (row.c5x5_reduce, row.c5x5, layer.branch3_kernel),
        (c_in, row.pool_proj, 1),
    ]
    return sum((conv_unit_cost(i, o, k, hw, variant) for i, o, k in units), Cost())


def layer_cost(layer: Layer, hw: tuple[int, int], variant: Variant) -> tuple[Cost, tuple[int, int]]:
    """The cost of one layer on an `hw` input, and its output height and width."""
    if isinstance(layer, ConvLayer):
        out = tuple(conv_output(s, layer.kernel, layer.stride, layer.padding) for s in hw)
        return conv_unit_cost(layer.in_channels, layer.out_channels, layer.kernel, out, variant), out
    if isinstance(layer, MaxPoolLayer):
        return Cost(), tuple(pool_output(s, layer.kernel, layer.stride) for s in hw)
    if isinstance(layer, InceptionLayer):
        return inception_cost(layer, hw, variant), hw
    if isinstance(layer, GlobalAvgPoolLayer):
        return Cost(), (1, 1)
    if isinstance(layer, LinearLayer):
        return linear_cost(layer.in_features, layer.out_features), hw
    assert isinstance(layer, (LRNLayer, DropoutLayer))
    return Cost(), hw


def row_depth(planned: PlannedRow) -> int:
    row = planned.row
    if isinstance(row, ConvRow):
        return 2 if row.reduce else 1
    if isinstance(row, InceptionRow):
        return 2
    return 1 if isinstance(row, LinearRow) else 0


def aux_cost(tap_channels: int, num_classes: int, variant: Variant) -> Cost:
    """One auxiliary head; its input is always pooled to 4x4 (see layers.AuxHead)."""
    pooled = (AUX.pooled_size, AUX.pooled_size)
    return (conv_unit_cost(tap_channels, AUX.conv_channels, 1, pooled, variant)
            + linear_cost(AUX.fc_in_features, AUX.fc_units)
            + linear_cost(AUX.fc_units, num_classes))


class _TooSmall(Exception):
    pass


def _walk(variant: Variant, input_size: int, num_classes: int) -> NetworkCost:
    hw = (input_size, input_size)
    rows, aux = [], Cost()
    for planned in layer_plan(variant, num_classes):
        cost = Cost()
        for layer in planned.layers:
            layer_c, hw = layer_cost(layer, hw, variant)
            if min(hw) < 1:
                raise _TooSmall(f"{layer.name} would output {hw[0]}x{hw[1]}")
            cost = cost + layer_c
        rows.append(RowCost(planned, (*hw, planned.out_channels), row_depth(planned), cost))
        if planned.row.name in AUX.taps:
            aux = aux + aux_cost(planned.out_channels, num_classes, variant)
    return NetworkCost(variant, input_size, num_classes, tuple(rows), aux)


def network_cost(variant: Variant | str, input_size: int = PAPER_INPUT_SIZE,
                 num_classes: int = PAPER_NUM_CLASSES) -> NetworkCost:
    """Walk the table for `variant` at a square `input_size`.

    Raises ValueError when the input is too small for some layer.
    """
    variant = get_variant(variant)
    try:
        return _walk(variant, input_size, num_classes)
    except _TooSmall as error:
        raise ValueError(f"input size {input_size} is below the minimum "
                         f"{min_input_size(variant)} of variant {variant.name!r} ({error})") from None


def min_input_size(variant: Variant | str) -> int:
    """The smallest square input for which every layer has an output of at least 1x1."""
    variant = get_variant(variant)
    size = 1
    while True:
        try:
            _walk(variant, size, PAPER_NUM_CLASSES)
            return size
        except _TooSmall:
            size += 1


# --- Sec. 4: why 1x1 reductions. The same conv cost as above, on one layer or one module.


@dataclass(frozen=True)
class ReductionComparison:
    """A k x k convolution to N outputs on H x W x C, with and without a 1x1 reduce to R."""

    height: int
    width: int
    in_channels: int
    kernel: int
    out_channels: int
    reduce: int

    @property
    def naive(self) -> int:
        return conv_multiply_adds(self.height, self.width, self.in_channels, self.kernel,
                                  self.out_channels)

    @property
    def reduce_ops(self) -> int:
        return conv_multiply_adds(self.height, self.width, self.in_channels, 1, self.reduce)

    @property
    def conv_ops(self) -> int:
        return conv_multiply_adds(self.height, self.width, self.reduce, self.kernel,
                                  self.out_channels)

    @property
    def reduced(self) -> int:
        return self.reduce_ops + self.conv_ops

    @property
    def saving(self) -> float:
        return 1.0 - self.reduced / self.naive


# The paper's worked example: 28x28x192 in, 3x3 to 128 outputs, reduced to 96 first.
PAPER_REDUCTION_EXAMPLE = ReductionComparison(28, 28, 192, kernel=3, out_channels=128, reduce=96)


@dataclass(frozen=True)
class ModuleComparison:
    """Figure 2: the naive Inception module against the one with 1x1 reductions."""

    name: str
    input_size: tuple[int, int, int]  # H, W, C
    naive_channels: int
    naive_ops: int
    reduced_channels: int
    reduced_ops: int


def module_comparison(key: str, variant: Variant | str,
                      input_size: int = PAPER_INPUT_SIZE) -> ModuleComparison:
    """Compare Inception module `key` ("3a") in naive and reduced form at its place in the net.

    The naive module runs every branch on the full input, and its pool branch
    passes all input channels through.
    """
    variant = get_variant(variant)
    network = network_cost(variant, input_size)
    previous = None
    for row_cost in network.rows:
        row = row_cost.planned.row
        if isinstance(row, InceptionRow) and inception_key(row) == key:
            height, width, channels = previous.output_size
            layer = row_cost.planned.layers[0]
            assert isinstance(layer, InceptionLayer)
            naive_ops = sum(conv_multiply_adds(height, width, channels, kernel, outputs)
                            for kernel, outputs in ((1, row.c1x1), (3, row.c3x3),
                                                    (layer.branch3_kernel, row.c5x5)))
            return ModuleComparison(row.name, (height, width, channels),
                                    naive_channels=row.c1x1 + row.c3x3 + row.c5x5 + channels,
                                    naive_ops=naive_ops, reduced_channels=row.out_channels,
                                    reduced_ops=row_cost.cost.ops)
        previous = row_cost
    keys = [inception_key(r.planned.row) for r in network.rows
            if isinstance(r.planned.row, InceptionRow)]
    raise ValueError(f"no Inception module {key!r}; choose one of {', '.join(keys)}")
