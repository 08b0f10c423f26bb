"""How an image becomes a model's input: one record, expressive enough for torchvision's
ImageNet normalisation, torchvision's `transform_input` and BVLC Caffe's 0-255
mean subtraction.

Pure Python (no torch): the data transforms apply it (`data.transforms.Normalize`),
the artifact schema stores it, the CLI lists the presets without importing torch.
Normalisation lives here and in the data transforms, never inside the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from googlenet.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_CROP_RATIO = 224 / 256  # resize to 256, center crop 224: torchvision's and Caffe's
CHANNEL_ORDERS = ("RGB", "BGR")
INTERPOLATIONS = ("bilinear", "bicubic")


@dataclass(frozen=True)
class Preprocessing:
    """Eval preprocessing: resize the shorter side to `resize_size`, center-crop `input_size`,
    scale pixel values 0..255 to 0..`value_scale`, put the channels in `channel_order`, then
    subtract `mean` and divide by `std` (both in the model's channel order and value scale)."""

    input_size: int = 224
    crop_ratio: float = 0.875  # resize_size = round(input_size / crop_ratio)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    value_scale: float = 1.0  # 1: values in [0, 1] (torchvision); 255: Caffe's raw values
    channel_order: str = "RGB"
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.input_size, int) or self.input_size < 1:
            problems.append(f"input_size must be a positive integer, got {self.input_size!r}")
        if not 0 < self.crop_ratio <= 1:
            problems.append(f"crop_ratio must be in (0, 1], got {self.crop_ratio}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            problems.append(f"mean and std need 3 values each, std positive; got {self.mean}, {self.std}")
        if self.value_scale <= 0:
            problems.append(f"value_scale must be positive, got {self.value_scale}")
        if self.channel_order not in CHANNEL_ORDERS:
            problems.append(f"channel_order must be one of {', '.join(CHANNEL_ORDERS)}, "
                            f"got {self.channel_order!r}")
        if self.interpolation not in INTERPOLATIONS:
            problems.append(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                            f"got {self.interpolation!r}")
        if problems:
            raise ConfigError("preprocessing: " + "; ".join(problems))

    @property
    def resize_size(self) -> int:
        return round(self.input_size / self.crop_ratio)

    def affine(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(scale, shift) per model channel: input = x * scale + shift, for x in [0, 1] in the
        model's channel order. The one formula every transform applies."""
        scale = tuple(self.value_scale / s for s in self.std)
        shift = tuple(-m / s for m, s in zip(self.mean, self.std))
        return scale, shift

    def with_size(self, input_size: int, crop_ratio: float | None = None) -> Preprocessing:
        return replace(self, input_size=input_size,
                       crop_ratio=self.crop_ratio if crop_ratio is None else crop_ratio)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Preprocessing:
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"preprocessing: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# Named preprocessings: what `--preprocess NAME` and recipes choose from.
PRESETS: dict[str, Preprocessing] = {
    # torchvision's ImageNet transforms (ToTensor, Normalize(IMAGENET_MEAN, IMAGENET_STD)).
    "imagenet": Preprocessing(),
    # torchvision's googlenet runs with transform_input=True, which turns ImageNet-normalised
    # input into (x - 0.5) / 0.5 inside the model. Our model does not do that; this preset is
    # the same input, given directly.
    "inception": Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    # BVLC's Caffe: values 0..255, the per-channel mean (B 104, G 117, R 123) subtracted, no
    # division. Listed in RGB order: our BVLC weights have conv1 flipped to RGB (weights/caffe.py).
    "caffe": Preprocessing(mean=(123.0, 117.0, 104.0), std=(1.0, 1.0, 1.0), value_scale=255.0),
}


def preset(name: str) -> Preprocessing:
    if name not in PRESETS:
        raise ConfigError(f"unknown preprocessing {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def describe(p: Preprocessing) -> str:
    """A short human description, naming the preset when it is one."""
    for name, candidate in PRESETS.items():
        if replace(candidate, input_size=p.input_size, crop_ratio=p.crop_ratio) == p:
            return f"{name} ({p.input_size}x{p.input_size}, resize {p.resize_size})"
    return (f"mean {list(p.mean)}, std {list(p.std)}, scale {p.value_scale:g}, {p.channel_order} "
            f"({p.input_size}x{p.input_size}, resize {p.resize_size})")
