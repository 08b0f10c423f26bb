"""Typed configuration: frozen dataclasses, filled from a YAML recipe and command-line overrides.

Every field of every section is a command-line flag of `googlenet train`
(`--lr`, `--batch-size`, `--ema-decay`, ...), so field names are unique across
sections. The resolved configuration is written to each run as config.yaml.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    variant: str = "paper"
    aux_logits: bool = True
    aux_weight: float = 0.3  # Sec. 5: auxiliary losses added with weight 0.3
    dropout: float | None = None  # None: the variant's (40% paper, 20% bn)
    aux_dropout: float | None = None  # None: the variant's (70%)
    # Fine-tuning: `imagenet`, `bvlc` or a weights file; the classifiers are replaced when the
    # data has another number of classes, and the data is normalised as the weights expect.
    weights: str | None = None
    freeze: str | None = None  # freeze the network through this row (e.g. 4e, inception4e), or `backbone`
    pretrained_lr_scale: float = 1.0  # learning rate of all but the classifiers, as a fraction of lr


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation. `paper`: Sec. 6's patch sampling, interpolation and photometrics."""

    augment: str = "paper"  # paper | crop-flip (pad-and-crop, for small images) | none
    scale: tuple[float, float] = (0.08, 1.0)  # fraction of the image area
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio
    random_interpolation: bool = True  # bilinear, area, nearest, bicubic with equal probability
    hflip: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.0
    pca_lighting: float = 0.1  # AlexNet-style PCA lighting noise, std of the alphas
    crop_padding: int = 4  # crop-flip: zero padding before the random crop


@dataclass(frozen=True)
class DataConfig:
    data: str = "digits"  # digits | an ImageFolder directory | a tar archive
    train_dir: str | None = None  # directory or tar archive; overrides `data`
    val_dir: str | None = None
    input_size: int = 224
    eval_crop_ratio: float = 0.875  # resize the shorter side to input_size / ratio, center crop
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    workers: int = 2
    in_memory: bool = False  # decode once, hold uint8 tensors (small data sets)
    cache_dir: str | None = None  # where archives are unpacked; default ~/.cache/googlenet
    max_bad_images: int = 50  # skip unreadable images, stop past this many in one epoch


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 2e-4
    batch_size: int = 32  # per process
    epochs: int = 250
    schedule: str = "step"  # step (gamma every step_epochs) | cosine | onecycle
    step_epochs: float = 8.0
    gamma: float = 0.96
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.0  # cosine/onecycle floor, as a fraction of lr
    label_smoothing: float = 0.0
    ema_decay: float = 0.9999  # Polyak averaging; 0 turns it off
    grad_clip: float = 0.0  # max gradient norm; 0 turns it off


@dataclass(frozen=True)
class RunConfig:
    output: str | None = None  # run directory; default runs/<timestamp>-<name>
    name: str = "googlenet"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    amp: str = "auto"  # auto | bf16 | fp16 | off
    channels_last: bool = True
    compile: bool = False
    quiet: bool = False
    eval_every: int = 1  # epochs
    max_steps: int = 0  # stop after this many optimizer steps, as if interrupted; 0: no limit
    max_nonfinite: int = 5  # consecutive non-finite losses that stop the run


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


SECTION_TYPES = {"model": ModelConfig, "augment": AugmentConfig, "data": DataConfig,
                 "optim": OptimConfig, "run": RunConfig}


def field_owner() -> dict[str, str]:
    """Field name -> its section, for flat command-line overrides."""
    owner: dict[str, str] = {}
    for section, cls in SECTION_TYPES.items():
        for f in fields(cls):
            assert f.name not in owner, f"field {f.name} is in two sections"
            owner[f.name] = section
    return owner


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def coerce(value: Any, annotation: Any, name: str) -> Any:
    """Turn a YAML or command-line value into the field's type, or raise ValueError."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        return coerce(value, next(a for a in args if a is not type(None)), name)
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        if len(items) != len(args):
            raise ValueError(f"{name}: expected {len(args)} comma-separated values, got {value!r}")
        return tuple(coerce(item, arg, name) for item, arg in zip(items, args))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    try:
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return annotation(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {annotation.__name__}, got {value!r}") from None


def build_section(cls: type, values: dict[str, Any], section: str) -> Any:
    hints = field_types(cls)
    unknown = set(values) - set(hints)
    if unknown:
        raise ValueError(f"unknown field(s) in section {section!r}: {', '.join(sorted(unknown))}")
    return cls(**{k: coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()})


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    unknown = set(values) - set(SECTION_TYPES)
    if unknown:
        raise ValueError(f"unknown section(s): {', '.join(sorted(unknown))}; "
                         f"expected {', '.join(SECTION_TYPES)}")
    sections = {name: build_section(cls, values.get(name) or {}, name)
                for name, cls in SECTION_TYPES.items()}
    config = TrainConfig(**sections)
    validate(config)
    return config


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value
    return {name: {k: plain(v) for k, v in dataclasses.asdict(getattr(config, name)).items()}
            for name in SECTION_TYPES}


def with_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """Apply flat overrides {"lr": "0.1", "variant": "bn"} (from the command line)."""
    owner = field_owner()
    values = config_to_dict(config)
    for name, value in overrides.items():
        if name not in owner:
            raise ValueError(f"unknown configuration field {name!r}")
        values[owner[name]][name] = value
    return config_from_dict(values)


CHOICES = {
    ("model", "variant"): ("paper", "bn"),
    ("augment", "augment"): ("paper", "crop-flip", "none"),
    ("optim", "optimizer"): ("sgd", "adamw"),
    ("optim", "schedule"): ("step", "cosine", "onecycle"),
    ("run", "amp"): ("auto", "bf16", "fp16", "off"),
}


def validate(config: TrainConfig) -> None:
    for (section, name), allowed in CHOICES.items():
        value = getattr(getattr(config, section), name)
        if value not in allowed:
            raise ValueError(f"{section}.{name} must be one of {', '.join(allowed)}, got {value!r}")
    positive = {"optim.batch_size": config.optim.batch_size, "optim.epochs": config.optim.epochs,
                "data.input_size": config.data.input_size, "optim.lr": config.optim.lr}
    for name, value in positive.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if config.model.pretrained_lr_scale < 0:
        raise ValueError("model.pretrained_lr_scale must be 0 or more, "
                         f"got {config.model.pretrained_lr_scale}")
    if config.data.workers < 0:
        raise ValueError(f"data.workers must be 0 or more, got {config.data.workers}")
    if not 0.0 <= config.optim.ema_decay < 1.0:
        raise ValueError(f"optim.ema_decay must be in [0, 1), got {config.optim.ema_decay}")


# --- Recipes: YAML files under googlenet/recipes, or a user's own copy.


def recipe_names() -> list[str]:
    folder = resources.files("googlenet") / "recipes"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str) -> TrainConfig:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"recipe file {path} does not exist")
        text = path.read_text()
    else:
        if name_or_path not in recipe_names():
            raise ValueError(f"unknown recipe {name_or_path!r}; choose one of "
                             f"{', '.join(recipe_names())} or give a YAML file")
        text = (resources.files("googlenet") / "recipes" / f"{name_or_path}.yaml").read_text()
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"recipe {name_or_path}: not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ValueError(f"recipe {name_or_path}: expected a mapping of sections")
    return config_from_dict(values)


def dump_yaml(config: TrainConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)
