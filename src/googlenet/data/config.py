"""The data and augmentation sections of a training configuration (pure Python, no torch).

Every field is a command-line flag of `googlenet train`: its help text is the field's
`help` metadata, its flag `--<field-name>` unless the metadata names another
(`path` is `--data`, `policy` is `--augment`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from googlenet.data.preprocessing import PRESETS, Preprocessing, preset
from googlenet.errors import ConfigError


def option(default: Any = dataclasses.MISSING, *, help: str, flag: str | None = None,
           choices: tuple[str, ...] | None = None) -> Any:
    """A config field with its command-line help (and flag name, and choices, where they differ)."""
    metadata = {"help": help, "flag": flag, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata)


AUGMENT_POLICIES = ("paper", "crop-flip", "none")
PHOTOMETRIC_POLICIES = ("howard", "jitter")
JITTER_STRENGTHS = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.0}  # jitter's defaults
MB = 1 << 20
DEFAULT_MAX_IMAGE_MB = 128  # far above any real photograph, far below what hurts a server


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation. `paper`: Sec. 6's patch sampling, interpolation and photometrics."""

    policy: str = option("paper", flag="augment", choices=AUGMENT_POLICIES,
                         help="paper (Sec. 6: random-area crops, random interpolation, photometric "
                              "distortions), crop-flip (pad-and-crop, for small images) or none")
    scale: tuple[float, float] = option((0.08, 1.0), help="crop area as a fraction of the image: MIN,MAX")
    ratio: tuple[float, float] = option((3 / 4, 4 / 3), help="crop aspect ratio: MIN,MAX")
    random_interpolation: bool = option(
        True, help="resize crops with bilinear, area, nearest or bicubic at random (Sec. 6)")
    hflip: float = option(0.5, help="probability of a horizontal flip (BVLC's mirror: true; "
                                    "Sec. 6 names none)")
    photometric: str = option("howard", choices=PHOTOMETRIC_POLICIES,
                              help="the paper policy's photometric distortions: howard (Howard 2013, "
                                   "the paper's reference: brightness, contrast and colour factors "
                                   "from [0.5, 1.5] in a random order) or jitter (torchvision's "
                                   "ColorJitter at the strengths below)")
    brightness: float | None = option(None, help="jitter: brightness strength s, factors from [1-s, "
                                                 f"1+s] (default {JITTER_STRENGTHS['brightness']:g})")
    contrast: float | None = option(
        None, help=f"jitter: contrast strength (default {JITTER_STRENGTHS['contrast']:g})")
    saturation: float | None = option(
        None, help=f"jitter: saturation strength (default {JITTER_STRENGTHS['saturation']:g})")
    hue: float | None = option(
        None, help=f"jitter: hue strength, 0 to 0.5 (default {JITTER_STRENGTHS['hue']:g})")
    pca_lighting: float = option(0.1, help="AlexNet's PCA lighting noise after the photometric "
                                           "distortions: std of the alphas (AlexNet's 0.1)")
    crop_padding: int = option(4, help="crop-flip: zero padding before the random crop")

    def jitter_strengths(self) -> dict[str, float]:
        """The `jitter` policy's strength of each distortion (unset: JITTER_STRENGTHS)."""
        return {name: default if getattr(self, name) is None else getattr(self, name)
                for name, default in JITTER_STRENGTHS.items()}

    def strengths_set(self) -> list[str]:
        return [name for name in JITTER_STRENGTHS if getattr(self, name) is not None]


@dataclass(frozen=True)
class DataConfig:
    path: str = option("digits", flag="data",
                       help="digits (built in), a folder or tar archive with train/ and val/ (or "
                            "test/), or one folder of class folders (split by val_fraction)")
    train_dir: str | None = option(None, help="the training class-folder root (folder or archive); "
                                              "with val_dir, instead of the data path")
    val_dir: str | None = option(None, help="the validation class-folder root (folder or archive)")
    val_fraction: float = option(0.2, help="for one folder of class folders: the share of each "
                                           "class held out for validation")
    input_size: int = option(224, help="crop size fed to the network (224 in the paper)")
    eval_crop_ratio: float = option(0.875, help="evaluation: resize the shorter side to "
                                                "input_size / ratio, then center-crop")
    preprocess: str = option("imagenet", choices=tuple(PRESETS),
                             help="input normalisation: imagenet (torchvision's mean and std), "
                                  "inception ((x - 0.5) / 0.5) or caffe (BVLC's 0-255 mean subtraction)")
    mean: tuple[float, float, float] | None = option(
        None, help="override the preset's per-channel mean: R,G,B")
    std: tuple[float, float, float] | None = option(
        None, help="override the preset's per-channel std: R,G,B")
    workers: int = option(2, help="DataLoader worker processes")
    in_memory: bool = option(False, help="decode the data set once and hold it in memory (small "
                                         "data sets; images of mixed sizes are resized once)")
    cache_dir: str | None = option(None, help="where compressed archives are unpacked "
                                              "(default ~/.cache/googlenet)")
    max_bad_images: int = option(50, help="skip unreadable images; stop past this many in one epoch")
    max_image_mb: float = option(DEFAULT_MAX_IMAGE_MB, help="image files larger than this are "
                                                            "refused unread (MB)")


def preprocessing(data: DataConfig) -> Preprocessing:
    """The Preprocessing a data configuration trains and evaluates with."""
    base = preset(data.preprocess)
    return replace(base, input_size=data.input_size, crop_ratio=data.eval_crop_ratio,
                   mean=data.mean or base.mean, std=data.std or base.std)


def with_preprocessing(data: DataConfig, p: Preprocessing) -> DataConfig:
    """`data` set to train with `p`'s normalisation (fine-tuning from weights that expect it),
    keeping the data's own input size."""
    for name, candidate in PRESETS.items():
        if (candidate.value_scale, candidate.channel_order) == (p.value_scale, p.channel_order):
            return replace(data, preprocess=name, mean=p.mean, std=p.std)
    raise ConfigError(f"no preprocessing preset with value scale {p.value_scale} and channel order "
                     f"{p.channel_order}")


# Field names of googlenet 0.1 (copied recipes, older runs' config.yaml and checkpoints).
RENAMED = {("data", "data"): "path", ("augment", "augment"): "policy"}


def upgrade_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration {section: {field: value}} as an older googlenet wrote it, in today's
    names: the one reader of older configurations, used by every parser of one. 0.1's renamed
    fields (RENAMED); an augment section from before `photometric` that sets jitter strengths
    trained with ColorJitter, so it keeps `jitter`."""
    upgraded: dict[str, Any] = {}
    for section, fields in values.items():
        if isinstance(fields, Mapping):
            fields = {RENAMED.get((section, k), k): v for k, v in fields.items()}
            if section == "augment" and "photometric" not in fields and any(
                    fields.get(n) is not None for n in JITTER_STRENGTHS):
                fields["photometric"] = "jitter"
        upgraded[section] = fields
    return upgraded


def refuse_unknown(section: str, values: Mapping[str, Any], known: Iterable[str],
                   where: str | None = None) -> None:
    """A ConfigError naming the fields of `values` that section `section` does not have, and
    where they were read (a recipe file, a checkpoint)."""
    unknown = sorted(set(values) - set(known))
    if unknown:
        place = f"{where}: " if where else ""
        raise ConfigError(f"{place}unknown field(s) in section {section!r}: {', '.join(unknown)}")


def data_config_from_dict(values: Mapping[str, Any], where: str | None = None) -> DataConfig:
    """A stored (already validated) data section, upgraded: lists back to tuples."""
    values = upgrade_config({"data": values})["data"]
    refuse_unknown("data", values, (f.name for f in dataclasses.fields(DataConfig)), where)
    return DataConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def missing_path(data: DataConfig) -> str | None:
    """The first path of `data` that does not exist (a recorded data set moved or deleted)."""
    for value in (data.train_dir, data.val_dir, None if data.path == "digits" else data.path):
        if value and not Path(value).expanduser().exists():
            return value
    return None
