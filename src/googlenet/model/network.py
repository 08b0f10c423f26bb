"""GoogLeNet, built by walking the paper's Table 1 (`arch.table.TABLE_1`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from googlenet.arch.costs import min_input_size
from googlenet.arch.table import (
    AUX,
    DEFAULT_VARIANT,
    PAPER_NUM_CLASSES,
    ConvLayer,
    DropoutLayer,
    GlobalAvgPoolLayer,
    InceptionLayer,
    Layer,
    LinearLayer,
    LRNLayer,
    MaxPoolLayer,
    PlannedRow,
    Variant,
    aux_module_names,
    get_variant,
    layer_plan,
    with_width,
)
from googlenet.model.layers import AuxHead, ConvUnit, Inception, local_response_norm

if TYPE_CHECKING:  # the record's package sits above this one (it builds models)
    from googlenet.artifact.record import Artifact


def make_module(layer: Layer, variant: Variant) -> nn.Module:
    if isinstance(layer, ConvLayer):
        return ConvUnit(layer.in_channels, layer.out_channels, layer.kernel, variant, layer.stride)
    if isinstance(layer, MaxPoolLayer):
        return nn.MaxPool2d(layer.kernel, stride=layer.stride, ceil_mode=True)
    if isinstance(layer, LRNLayer):
        return local_response_norm()
    if isinstance(layer, InceptionLayer):
        return Inception(layer, variant)
    if isinstance(layer, GlobalAvgPoolLayer):
        return nn.AdaptiveAvgPool2d((1, 1))
    if isinstance(layer, DropoutLayer):
        return nn.Dropout(p=layer.p)
    assert isinstance(layer, LinearLayer)
    return nn.Linear(layer.in_features, layer.out_features)


class GoogLeNet(nn.Module):
    """GoogLeNet (Szegedy et al., 2015), one of the variants in `arch.VARIANTS`.

    `forward(x)` returns logits in train and eval mode alike; training code
    that needs the auxiliary classifiers calls `forward_train(x)`.
    Inputs are normalised by the data transforms, never inside the model.

    timm's interface: `forward_features(x)` is the trunk's last feature map (N x 1024 x 7 x 7
    at 224), `forward_head(maps, pre_logits=False)` pools it (then dropout and the classifier);
    `feature_maps(x, names)` gives any Table 1 rows' maps by name.

    A model that the library builds or loads (`googlenet.googlenet`, `build_model`,
    `load_model`, `train`) carries its record: `model.artifact` (variant, classes,
    preprocessing, provenance), `model.classes` and `model.transforms()`.
    """

    __jit_unused_properties__ = ["classes"]  # TorchScript compiles properties otherwise

    def __init__(self, variant: Variant | str, num_classes: int = PAPER_NUM_CLASSES,
                 aux_logits: bool = True) -> None:
        super().__init__()
        self.variant = variant = get_variant(variant)
        self.num_classes = num_classes
        self.aux_logits = aux_logits
        self.min_input_size = min_input_size(variant)
        self.plan = layer_plan(variant, num_classes)
        self.feature_names: list[str] = []  # trunk modules, through inception (5b)
        self.aux_taps: dict[str, str] = {}  # trunk module -> auxiliary head on its output
        tap_channels: dict[str, int] = {}
        in_trunk = True
        for planned in self.plan:
            for layer in planned.layers:
                self.add_module(layer.name, make_module(layer, variant))
                in_trunk = in_trunk and not isinstance(layer, GlobalAvgPoolLayer)
                if in_trunk:
                    self.feature_names.append(layer.name)
            if planned.row.name in AUX.taps:
                tap_channels[planned.layers[-1].name] = planned.out_channels
        if aux_logits:
            for head_name, (tap, channels) in zip(aux_module_names(), tap_channels.items()):
                self.add_module(head_name, AuxHead(channels, num_classes, variant))
                self.aux_taps[tap] = head_name
        self.num_features = self.fc.in_features
        self.artifact: Artifact | None = None  # set by googlenet.artifact.build
        init_weights(self, variant)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in output order (from the record; "0", "1", ... before one is attached)."""
        if self.artifact is not None and self.artifact.num_classes == self.num_classes:
            return self.artifact.classes
        return tuple(str(i) for i in range(self.num_classes))

    def transforms(self) -> Callable:
        """The eval transform this model's weights expect: a PIL image or an RGB 3 x H x W tensor
        -> its normalised input (`Artifact.transforms`)."""
        if self.artifact is None:
            raise ValueError("this network has no record (built by model.network.build_network): "
                             "build it with googlenet.googlenet() or googlenet.build_model() to "
                             "get its preprocessing")
        return self.artifact.transforms()

    def row_modules(self, planned: PlannedRow) -> list[nn.Module]:
        """The modules that implement one row of `self.plan` (one Table 1 row)."""
        return [getattr(self, layer.name) for layer in planned.layers]

    def check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an RGB batch of shape (N, 3, H, W), got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_input_size:
            raise ValueError(f"input {x.shape[-2]}x{x.shape[-1]} is below the minimum size "
                             f"{self.min_input_size}x{self.min_input_size} of variant "
                             f"{self.variant.name!r}")

    def _trunk(self, x: Tensor, with_aux: bool) -> tuple[Tensor, list[Tensor]]:
        self.check_input(x)
        aux: list[Tensor] = []
        for name in self.feature_names:
            x = getattr(self, name)(x)
            if with_aux and name in self.aux_taps:
                aux.append(getattr(self, self.aux_taps[name])(x))
        return x, aux

    def forward_features(self, x: Tensor) -> Tensor:
        """The last feature map, inception (5b)'s output, unpooled (N x 1024 x 7 x 7 at 224):
        timm's contract. `forward_head(maps, pre_logits=True)` pools it to the 1024-d vector."""
        return self._trunk(x, with_aux=False)[0]

    def feature_maps(self, x: Tensor, names: list[str]) -> dict[str, Tensor]:
        """Feature maps of the named trunk modules (e.g. conv3, inception4e, or the Inception
        key 4e), stopping after the last one needed."""
        wanted = {self.layer_name(name): name for name in names}
        outputs: dict[str, Tensor] = {}
        self.check_input(x)
        for name in self.feature_names:
            x = getattr(self, name)(x)
            if name in wanted:
                outputs[wanted[name]] = x
                if len(outputs) == len(wanted):
                    break
        return outputs

    def layer_name(self, name: str) -> str:
        """A trunk module's name, given it or its Inception key (4e -> inception4e)."""
        for candidate in (name, f"inception{name}"):
            if candidate in self.feature_names:
                return candidate
        raise ValueError(f"no layer {name!r}; choose from {', '.join(self.feature_names)}")

    def forward_head(self, maps: Tensor, pre_logits: bool = False) -> Tensor:
        """N x 1024 x h x w -> logits; with `pre_logits`, the pooled N x 1024 vector (timm's)."""
        pooled = torch.flatten(self.avgpool(maps), 1)  # Table 1's "avg pool" (7x7 at 224)
        return pooled if pre_logits else self.fc(self.dropout(pooled))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_train(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and the auxiliary logits [on 4a, on 4d] (empty without aux heads).

        The caller weights the auxiliary losses (0.3 in the paper, Sec. 5).
        """
        maps, aux = self._trunk(x, with_aux=self.aux_logits)
        return self.forward_head(maps), aux

    def reset_classifier(self, num_classes: int) -> None:
        """New main and auxiliary classifiers for `num_classes` (for fine-tuning)."""
        check_num_classes(num_classes)
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes)
        init_classifier(self.fc, self.variant)
        for head_name in self.aux_taps.values():
            head = getattr(self, head_name)
            head.fc2 = nn.Linear(head.fc2.in_features, num_classes)
            init_classifier(head.fc2, self.variant)


def caffe_xavier_(weight: Tensor) -> None:
    """Caffe's "xavier" filler: uniform in +-sqrt(3 / fan_in)."""
    fan_in = weight[0].numel()
    bound = math.sqrt(3.0 / fan_in)
    nn.init.uniform_(weight, -bound, bound)


def init_classifier(linear: nn.Linear, variant: Variant) -> None:
    if variant.batch_norm:
        nn.init.trunc_normal_(linear.weight, mean=0.0, std=0.01, a=-2, b=2)
    else:
        caffe_xavier_(linear.weight)
        nn.init.zeros_(linear.bias)


def init_weights(model: GoogLeNet, variant: Variant) -> None:
    """Initial weights.

    `paper`: the paper gives none; we follow BVLC's replication: Caffe's xavier
    for every weight, biases 0.2 on layers followed by ReLU (so units start
    active) and 0 on the classifiers.
    `bn`: torchvision's: truncated normal (std 0.01), BN scale 1 and shift 0.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if variant.batch_norm:
                nn.init.trunc_normal_(module.weight, mean=0.0, std=0.01, a=-2, b=2)
            else:
                caffe_xavier_(module.weight)
                nn.init.constant_(module.bias, 0.2)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    if not variant.batch_norm:
        init_classifier(model.fc, variant)
        for head_name in model.aux_taps.values():
            init_classifier(getattr(model, head_name).fc2, variant)


def check_num_classes(num_classes: int) -> None:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")


def build_network(variant: str | None = None, num_classes: int | None = None,
                  aux_logits: bool = True, dropout: float | None = None,
                  aux_dropout: float | None = None, width: float = 1.0) -> GoogLeNet:
    """The network alone, with fresh weights and no record (users: `googlenet.build_model`,
    which attaches one, or `googlenet.googlenet(weights=...)`).

    variant: "paper" (as published: LRN, biases, 5x5 branches; the default) or "bn"
      (batch norm, state_dict-compatible with torchvision.models.googlenet).
    num_classes: 1000 by default.
    aux_logits: include the two auxiliary classifiers (used by forward_train only).
    dropout, aux_dropout: override the variant's dropout ratios (0.4 / 0.7 in the paper).
    width: every filter count of Table 1 times this (Sec. 7's "wider version"; 1: as printed).
    """
    variant = variant or DEFAULT_VARIANT
    num_classes = PAPER_NUM_CLASSES if num_classes is None else num_classes
    check_num_classes(num_classes)
    spec = with_width(get_variant(variant), width)
    for name, p in (("dropout", dropout), ("aux_dropout", aux_dropout)):
        if p is not None:
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
            spec = dataclasses.replace(spec, **{name: p})
    return GoogLeNet(spec, num_classes=num_classes, aux_logits=aux_logits)
