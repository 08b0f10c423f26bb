"""`Artifact`: everything needed to use a model, in one record.

In the spirit of timm's `PretrainedCfg` and torchvision's `Weights`, but one record
instead of two: the architecture (variant, classes, auxiliary heads), the
preprocessing, where it came from, and (for PyTorch formats) the weights.
Every loader returns one (`weights.load_artifact`); every writer stores its
metadata through `artifact.schema`; `artifact.build.model_from_artifact` makes
the GoogLeNet that holds its weights, and every model the library builds or loads carries
its record as `model.artifact` (without the weights, which the model holds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from googlenet.arch.table import VARIANTS
from googlenet.data.preprocessing import Preprocessing
from googlenet.errors import ModelSourceError

if TYPE_CHECKING:  # torch stays unimported: the CLI reads metadata without it
    from torch import Tensor

    from googlenet.data.config import DataConfig
    from googlenet.data.transforms import EvalTransform


@dataclass(frozen=True)
class Provenance:
    """Where a model came from."""

    source: str = ""  # a published name or the file it was loaded from
    sha256: str | None = None  # of that file, where it was read from one
    averaged: bool = False  # Polyak-averaged weights of a training run (uniform or EMA)
    config: dict[str, Any] | None = None  # the training run's resolved configuration
    metrics: dict[str, Any] | None = None  # the training run's best validation metrics


@dataclass(frozen=True)
class Artifact:
    variant: str  # "paper" or "bn"
    classes: tuple[str, ...]  # class names in output order
    preprocessing: Preprocessing
    aux_logits: bool = False  # the weights hold the auxiliary classifiers
    width: float = 1.0  # Table 1's filter counts times this (arch.table.widened)
    provenance: Provenance = field(default_factory=Provenance)
    # Our (torchvision's) parameter names; None for formats that hold their own graph (ONNX,
    # TorchScript), which run through an inference backend instead.
    state_dict: Mapping[str, Tensor] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ModelSourceError(f"{self.provenance.source or 'model'}: unknown variant "
                                   f"{self.variant!r}; expected one of {', '.join(VARIANTS)}")
        if not self.classes:
            raise ModelSourceError(f"{self.provenance.source or 'model'}: no classes")
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def source(self) -> str:
        return self.provenance.source

    def without_weights(self) -> Artifact:
        return replace(self, state_dict=None)

    def transforms(self) -> EvalTransform:
        """The eval transform of this model's preprocessing (torchvision's `weights.transforms()`):
        a PIL image or an RGB 3 x H x W tensor (uint8, or float in [0, 1]) -> the normalised
        3 x S x S input: shorter side resized to `preprocessing.resize_size`, center crop."""
        from googlenet.data.transforms import eval_transform  # torch, on first use only

        return eval_transform(self.preprocessing)

    def recorded_data(self) -> DataConfig | None:
        """The data set its training run recorded (None for published weights and files that
        came from elsewhere): what `evaluate` and int8 calibration use when given no data."""
        from googlenet.data.config import data_config_from_dict

        config = self.provenance.config
        if not config or "data" not in config:
            return None
        return data_config_from_dict(config["data"], f"the configuration recorded in {self.source}")
