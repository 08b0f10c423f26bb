"""The paper's Table 1 as data, and the variants built from it.

`TABLE_1` is the single source of truth for the network: `model.py` builds the
modules by walking it, `costs.py` computes output sizes, params and
multiply-adds from it, and `summary.py` prints it beside the paper's figures.
Each row also carries the figures the paper prints (`Printed`), so that the
computed table can be checked against, and shown beside, the published one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Union


@dataclass(frozen=True)
class Printed:
    """What the paper prints for a row: output size and its rounded params and ops."""

    output_size: tuple[int, int, int]  # H, W, C
    params: str | None = None  # "159K"
    ops: str | None = None  # "128M"


@dataclass(frozen=True)
class ConvRow:
    """A convolution; `reduce` is the "#3x3 reduce" 1x1 convolution in front of it."""

    name: str
    kernel: int
    stride: int
    out_channels: int
    printed: Printed
    reduce: int | None = None
    lrn_after: bool = False  # Figure 3: LocalRespNorm follows this layer


@dataclass(frozen=True)
class PoolRow:
    name: str
    kind: Literal["max", "avg"]
    kernel: int
    stride: int
    printed: Printed
    lrn_after: bool = False


@dataclass(frozen=True)
class InceptionRow:
    """An Inception module (Figure 2b): four branches concatenated along channels."""

    name: str  # "inception (3a)"
    c1x1: int  # #1x1
    c3x3_reduce: int  # #3x3 reduce
    c3x3: int  # #3x3
    c5x5_reduce: int  # #5x5 reduce
    c5x5: int  # #5x5
    pool_proj: int  # pool proj
    printed: Printed

    @property
    def out_channels(self) -> int:
        return self.c1x1 + self.c3x3 + self.c5x5 + self.pool_proj


@dataclass(frozen=True)
class DropoutRow:
    name: str
    printed: Printed


@dataclass(frozen=True)
class LinearRow:
    name: str
    printed: Printed  # printed for 1000 ImageNet classes; the model takes num_classes


@dataclass(frozen=True)
class SoftmaxRow:
    """Listed for completeness: the model returns logits, the loss applies softmax."""

    name: str
    printed: Printed


Row = Union[ConvRow, PoolRow, InceptionRow, DropoutRow, LinearRow, SoftmaxRow]


TABLE_1: tuple[Row, ...] = (
    ConvRow("convolution", kernel=7, stride=2, out_channels=64,
            printed=Printed((112, 112, 64), "2.7K", "34M")),
    PoolRow("max pool", "max", kernel=3, stride=2, lrn_after=True,
            printed=Printed((56, 56, 64))),
    ConvRow("convolution", kernel=3, stride=1, out_channels=192, reduce=64, lrn_after=True,
            printed=Printed((56, 56, 192), "112K", "360M")),
    PoolRow("max pool", "max", kernel=3, stride=2, printed=Printed((28, 28, 192))),
    InceptionRow("inception (3a)", 64, 96, 128, 16, 32, 32,
                 printed=Printed((28, 28, 256), "159K", "128M")),
    InceptionRow("inception (3b)", 128, 128, 192, 32, 96, 64,
                 printed=Printed((28, 28, 480), "380K", "304M")),
    PoolRow("max pool", "max", kernel=3, stride=2, printed=Printed((14, 14, 480))),
    InceptionRow("inception (4a)", 192, 96, 208, 16, 48, 64,
                 printed=Printed((14, 14, 512), "364K", "73M")),
    InceptionRow("inception (4b)", 160, 112, 224, 24, 64, 64,
                 printed=Printed((14, 14, 512), "437K", "88M")),
    InceptionRow("inception (4c)", 128, 128, 256, 24, 64, 64,
                 printed=Printed((14, 14, 512), "463K", "100M")),
    InceptionRow("inception (4d)", 112, 144, 288, 32, 64, 64,
                 printed=Printed((14, 14, 528), "580K", "119M")),
    InceptionRow("inception (4e)", 256, 160, 320, 32, 128, 128,
                 printed=Printed((14, 14, 832), "840K", "170M")),
    PoolRow("max pool", "max", kernel=3, stride=2, printed=Printed((7, 7, 832))),
    InceptionRow("inception (5a)", 256, 160, 320, 32, 128, 128,
                 printed=Printed((7, 7, 832), "1072K", "54M")),
    InceptionRow("inception (5b)", 384, 192, 384, 48, 128, 128,
                 printed=Printed((7, 7, 1024), "1388K", "71M")),
    PoolRow("avg pool", "avg", kernel=7, stride=1, printed=Printed((1, 1, 1024))),
    DropoutRow("dropout (40%)", printed=Printed((1, 1, 1024))),
    LinearRow("linear", printed=Printed((1, 1, 1000), "1000K", "1M")),
    SoftmaxRow("softmax", printed=Printed((1, 1, 1000))),
)

PAPER_INPUT_SIZE = 224
PAPER_NUM_CLASSES = 1000
# A fresh model's variant when none is asked for: the network as published. With weights, the
# weights' own variant (torchvision's ImageNet weights are `bn`, BVLC's are `paper`).
DEFAULT_VARIANT = "paper"


@dataclass(frozen=True)
class AuxSpec:
    """Sec. 5: the auxiliary classifiers on top of 4a and 4d, used in training only."""

    taps: tuple[str, ...] = ("inception (4a)", "inception (4d)")
    pool_kernel: int = 5
    pool_stride: int = 3
    pooled_size: int = 4  # 14x14 -> 4x4 at 224; other input sizes are pooled to this
    conv_channels: int = 128
    fc_units: int = 1024
    loss_weight: float = 0.3

    @property
    def fc_in_features(self) -> int:
        return self.conv_channels * self.pooled_size * self.pooled_size


AUX = AuxSpec()


@dataclass(frozen=True)
class Variant:
    """How a variant departs from walking TABLE_1 literally.

    `paper` follows the publication; `bn` reproduces torchvision's `googlenet`
    so that its state_dict is interchangeable, including its known departures.
    """

    name: str
    batch_norm: bool  # conv -> BatchNorm(eps) -> ReLU, convolutions without bias
    bn_eps: float
    lrn: bool  # Figure 3's LocalRespNorm layers
    branch3_kernel: int  # the "#5x5" branch: 5 in the paper; 3 in torchvision (its issue #906)
    maxpool_kernels: tuple[tuple[str, int], ...]  # overrides: torchvision's maxpool4 is 2x2
    dropout: float  # main head
    aux_dropout: float
    aux_pool: Literal["paper", "adaptive"]  # 5x5/3 average pool, or adaptive 4x4
    description: str
    width: float = 1.0  # every filter count of the table scaled (`widened`); Sec. 7's wider model


VARIANTS: dict[str, Variant] = {
    "paper": Variant(
        name="paper", batch_norm=False, bn_eps=0.0, lrn=True, branch3_kernel=5,
        maxpool_kernels=(), dropout=0.4, aux_dropout=0.7, aux_pool="paper",
        description="as published: biases, LRN, 5x5 branches, no batch norm",
    ),
    "bn": Variant(
        name="bn", batch_norm=True, bn_eps=1e-3, lrn=False, branch3_kernel=3,
        maxpool_kernels=(("maxpool4", 2),), dropout=0.2, aux_dropout=0.7, aux_pool="adaptive",
        description="batch-normalized, state_dict-compatible with torchvision.models.googlenet",
    ),
}

# Figure 3's LocalRespNorm: size 5, alpha 1e-4, beta 0.75 (as in the BVLC replication).
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 1.0


def get_variant(variant: Variant | str) -> Variant:
    """A variant by name ("paper", "bn"), or the Variant itself: every function that takes a
    variant takes either."""
    if isinstance(variant, Variant):
        return variant
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[variant]


MAX_WIDTH = 16.0  # far beyond any "wider version"; a typo such as 125 would build 2 billion weights


def check_width(width: float) -> float:
    """`width` if it is in (0, MAX_WIDTH], else ValueError saying so."""
    if not 0 < width <= MAX_WIDTH:
        raise ValueError(f"width must be in (0, {MAX_WIDTH:g}], got {width}")
    return float(width)


def with_width(variant: Variant | str, width: float) -> Variant:
    """`variant` with every filter count of the table times `width` (1: as printed)."""
    return dataclasses.replace(get_variant(variant), width=check_width(width))


def widened(table: tuple[Row, ...], width: float) -> tuple[Row, ...]:
    """Sec. 7: one of the ensemble's seven models "is a wider version" of the network; the paper
    says no more, so here every convolution's filter count in the table (each of Table 1's
    filter columns) is multiplied by `width` and rounded, at least 1. The auxiliary heads keep
    Sec. 5's numbers (128 filters, 1024 units); the classifier follows the width of 5b."""
    if width == 1:
        return table

    def scaled(count: int) -> int:
        return max(1, round(count * width))

    rows: list[Row] = []
    for row in table:
        if isinstance(row, ConvRow):
            row = dataclasses.replace(row, out_channels=scaled(row.out_channels),
                                      reduce=scaled(row.reduce) if row.reduce else None)
        elif isinstance(row, InceptionRow):
            row = dataclasses.replace(row, **{name: scaled(getattr(row, name)) for name in (
                "c1x1", "c3x3_reduce", "c3x3", "c5x5_reduce", "c5x5", "pool_proj")})
        rows.append(row)
    return tuple(rows)


def inception_key(row: InceptionRow) -> str:
    """'inception (3a)' -> '3a'."""
    return row.name.removeprefix("inception (").removesuffix(")")


def module_names(table: tuple[Row, ...] = TABLE_1) -> list[list[str]]:
    """The attribute names of each row's modules, in torchvision's naming.

    Convolutions count conv1, conv2, ... (a reduce 1x1 takes its own number),
    max pools maxpool1, ...; Inception rows are inception3a, ...; the head is
    avgpool, dropout, fc. (LRN layers, which have no parameters, are named by
    `layer_plan`: lrn1, lrn2.)
    """
    names: list[list[str]] = []
    convs = maxpools = 0
    for row in table:
        row_names: list[str] = []
        if isinstance(row, ConvRow):
            for _ in range(2 if row.reduce else 1):
                convs += 1
                row_names.append(f"conv{convs}")
        elif isinstance(row, PoolRow):
            if row.kind == "max":
                maxpools += 1
                row_names.append(f"maxpool{maxpools}")
            else:
                row_names.append("avgpool")
        elif isinstance(row, InceptionRow):
            row_names.append(f"inception{inception_key(row)}")
        elif isinstance(row, DropoutRow):
            row_names.append("dropout")
        elif isinstance(row, LinearRow):
            row_names.append("fc")
        names.append(row_names)
    return names


def aux_module_names() -> list[str]:
    return [f"aux{i + 1}" for i in range(len(AUX.taps))]


# --- The table resolved for one variant: concrete layers, consumed by model.py and costs.py.


@dataclass(frozen=True)
class ConvLayer:
    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1

    @property
    def padding(self) -> int:  # Figure 3's (S)ame padding
        return self.kernel // 2


@dataclass(frozen=True)
class MaxPoolLayer:
    name: str
    kernel: int
    stride: int  # ceil mode, so 224 gives Table 1's 112, 56, 28, 14, 7


@dataclass(frozen=True)
class LRNLayer:
    name: str


@dataclass(frozen=True)
class InceptionLayer:
    name: str
    in_channels: int
    row: InceptionRow
    branch3_kernel: int


@dataclass(frozen=True)
class GlobalAvgPoolLayer:
    """Table 1's 7x7/1 average pool, made global so that other input sizes work."""

    name: str


@dataclass(frozen=True)
class DropoutLayer:
    name: str
    p: float


@dataclass(frozen=True)
class LinearLayer:
    name: str
    in_features: int
    out_features: int


Layer = Union[ConvLayer, MaxPoolLayer, LRNLayer, InceptionLayer, GlobalAvgPoolLayer, DropoutLayer,
              LinearLayer]


@dataclass(frozen=True)
class PlannedRow:
    row: Row
    layers: tuple[Layer, ...]
    out_channels: int


def _row_layers(row: Row, names: list[str], in_channels: int, variant: Variant,
                num_classes: int) -> tuple[list[Layer], int]:
    """The layers of one row (LRN excluded) and the channels it outputs."""
    if isinstance(row, ConvRow):
        layers: list[Layer] = []
        channels = in_channels
        if row.reduce:
            layers.append(ConvLayer(names[0], channels, row.reduce, kernel=1))
            channels = row.reduce
        layers.append(ConvLayer(names[-1], channels, row.out_channels, row.kernel, row.stride))
        return layers, row.out_channels
    if isinstance(row, PoolRow) and row.kind == "max":
        kernel = dict(variant.maxpool_kernels).get(names[0], row.kernel)
        return [MaxPoolLayer(names[0], kernel, row.stride)], in_channels
    if isinstance(row, PoolRow):
        return [GlobalAvgPoolLayer(names[0])], in_channels
    if isinstance(row, InceptionRow):
        return [InceptionLayer(names[0], in_channels, row, variant.branch3_kernel)], row.out_channels
    if isinstance(row, DropoutRow):
        return [DropoutLayer(names[0], variant.dropout)], in_channels
    if isinstance(row, LinearRow):
        return [LinearLayer(names[0], in_channels, num_classes)], num_classes
    return [], in_channels  # softmax: applied by the loss, not a module


def layer_plan(variant: Variant | str, num_classes: int = PAPER_NUM_CLASSES,
               table: tuple[Row, ...] = TABLE_1) -> list[PlannedRow]:
    """Walk the table (widened by `variant.width`): each row with the concrete layers that
    implement it for `variant`."""
    variant = get_variant(variant)
    table = widened(table, variant.width)
    planned = []
    channels = 3  # RGB input
    lrns = 0
    for row, names in zip(table, module_names(table)):
        layers, channels = _row_layers(row, names, channels, variant, num_classes)
        if getattr(row, "lrn_after", False) and variant.lrn:
            lrns += 1
            layers.append(LRNLayer(f"lrn{lrns}"))
        planned.append(PlannedRow(row, tuple(layers), channels))
    return planned


# Sec. 7: test-time crops. A scheme is named by its number of crops per image: 1 (center),
# 10 (corners, center and their mirrors) and the paper's 144 (4 scales x 3 squares x 6 crops
# x 2 mirrors, at shorter sides 256, 288, 320 and 352 for 224x224 crops).
CROP_SCHEMES = (1, 10, 144)
PAPER_SCALES = (256, 288, 320, 352)
