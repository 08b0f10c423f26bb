"""Typed configuration: frozen dataclasses, filled from a YAML recipe and command-line overrides.

Every field of every section is a command-line flag of `googlenet train` (`--lr`,
`--batch-size`, `--ema-decay`, ...), with the help text of its `option(...)`, so field names
are unique across sections. The resolved configuration is written to each run as
config.yaml, with a `resolved` section of the values derived from it (the effective learning
rate, the global batch).
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

from googlenet.arch.table import AUX, VARIANTS, check_width
from googlenet.data.config import AugmentConfig, DataConfig, option, refuse_unknown, upgrade_config
from googlenet.errors import ConfigError

LR_SCALINGS = ("none", "linear")
SCHEDULES = ("step", "poly", "cosine", "onecycle")
AVERAGINGS = ("polyak", "ema", "none")
SCALED_WARMUP_EPOCHS = 5.0  # Goyal et al. 2017: warm up when the learning rate is scaled up
MAX_WARMUP_FRACTION = 0.25  # of the run's epochs: a 2-epoch run warms up for half an epoch


@dataclass(frozen=True)
class ModelConfig:
    variant: str | None = option(None, choices=tuple(VARIANTS),
                                 help="paper (as published: LRN, biases, 5x5 branches) or bn "
                                      "(batch norm, torchvision-compatible); unset: the weights' "
                                      "variant, else paper")
    aux_logits: bool = option(True, help="train with the two auxiliary classifiers (Sec. 5)")
    width: float = option(1.0, help="every filter count of Table 1 times this (Sec. 7: one of the "
                                    "ensemble's seven models was a wider version)")
    aux_weight: float = option(AUX.loss_weight, help="weight of each auxiliary loss (0.3 in Sec. 5)")
    dropout: float | None = option(None, help="main head dropout (default: the variant's, 40% in "
                                              "the paper)")
    aux_dropout: float | None = option(None, help="auxiliary heads' dropout (default: 70%)")
    weights: str | None = option(None, flag="model",
                                 help="start from this model (fine-tuning): imagenet, bvlc, a run "
                                      "directory or a weights file; the classifiers are replaced "
                                      "for the data's classes")
    init_from: str | None = option(None, help="start from the initial weights of this run (its "
                                              "recorded init seed and model) or of this weights "
                                              "file or checkpoint, trained from scratch by the "
                                              "recipe (unlike --model, nothing is replaced)")
    freeze: str | None = option(None, help="freeze the network through this row (e.g. 4e, "
                                           "inception4e) or the whole backbone")
    pretrained_lr_scale: float = option(1.0, help="learning rate of all but the classifiers, as a "
                                                  "fraction of lr (fine-tuning)")


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = option("sgd", choices=("sgd", "adamw"), help="sgd (the paper) or adamw")
    lr: float = option(0.01, help="learning rate at reference_batch_size (see lr_scaling)")
    lr_scaling: str = option("none", choices=LR_SCALINGS,
                             help="linear: scale lr by the global batch / reference_batch_size "
                                  "(Goyal et al. 2017), with a warm-up; none: use lr as given")
    reference_batch_size: int = option(32, help="the global batch size lr is given for")
    momentum: float = option(0.9, help="SGD momentum (0.9, Sec. 6)")
    nesterov: bool = option(False, help="Nesterov momentum")
    weight_decay: float = option(2e-4, help="weight decay of weights (never of biases and "
                                            "batch-norm parameters)")
    bias_lr_scale: float = option(1.0, help="learning rate of biases as a multiple of lr (BVLC: 2)")
    batch_size: int = option(32, help="images per step per process (lowered to fit a small data set)")
    epochs: int = option(250, help="training epochs")
    schedule: str = option("step", choices=SCHEDULES,
                           help="step (gamma every step_epochs, Sec. 6), poly ((1 - step / steps) "
                                "** power, BVLC's quick_solver), cosine or onecycle")
    step_epochs: float = option(8.0, help="step schedule: epochs between cuts (8, Sec. 6)")
    gamma: float = option(0.96, help="step schedule: factor per cut (0.96: 4%, Sec. 6)")
    power: float = option(1.0, help="poly schedule: the exponent (BVLC's quick_solver: 0.5)")
    warmup_epochs: float = option(0.0, help="epochs of linear learning-rate warm-up, from the "
                                            "reference batch's rate to a linearly scaled one, "
                                            "else from 0")
    min_lr_ratio: float = option(0.0, help="cosine/onecycle floor, as a fraction of lr")
    label_smoothing: float = option(0.0, help="label smoothing of the cross-entropy loss")
    averaging: str = option("ema", choices=AVERAGINGS,
                            help="the averaged weights evaluated and kept as best.pt (Sec. 6's "
                                 "Polyak averaging): polyak (the uniform average of the iterates), "
                                 "ema (an exponential moving average, ema_decay) or none")
    ema_decay: float = option(0.9999, help="ema averaging: the decay per step; 0 turns it off")
    bn_stats_batches: int = option(8, help="batch-norm models: training batches over which the "
                                           "evaluated weights' statistics are estimated afresh "
                                           "before each validation (the running averages lag "
                                           "behind fast-changing weights); 0 keeps them")
    grad_clip: float = option(0.0, help="maximum gradient norm; 0 turns clipping off")


@dataclass(frozen=True)
class RunConfig:
    output: str | None = option(None, flag="output_dir",
                                help="run directory (default runs/<timestamp>-<name>)")
    name: str = option("googlenet", help="the run's name, in its default directory")
    seed: int = option(0, help="random seed of the sampling: sample order, augmentation, dropout "
                               "(and of the initial weights unless --init-seed is given)")
    init_seed: int | None = option(None, help="random seed of the initial weights (default: --seed). "
                                              "Sec. 7's ensemble: one --init-seed, seven --seed")
    device: str = option("auto", help="auto, cpu, cuda, cuda:N or mps")
    amp: str = option("auto", choices=("auto", "bf16", "fp16", "off"),
                      help="mixed precision; auto: bf16 where the device has it natively")
    channels_last: bool = option(True, help="channels-last memory format (faster on CPUs and GPUs)")
    compile: bool = option(False, help="torch.compile the training step")
    quiet: bool = option(False, help="no progress bar")
    eval_every: int = option(1, help="validate every N epochs (and after the last)")
    max_nonfinite: int = option(5, help="consecutive non-finite losses that stop the run")
    threads: int = option(0, help="intra-op threads, fixed for the run and recorded (a resume uses "
                                  "the recorded count: results depend on it); 0: OMP_NUM_THREADS "
                                  "when set, else every usable core")
    follow_free_cores: bool = option(False, help="use only the cores other processes leave free, "
                                                 "re-measured every 5 s: faster on a shared machine, "
                                                 "but the weights then depend on the load (each "
                                                 "change is logged and recorded)")


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


SECTION_TYPES: dict[str, type] = {"model": ModelConfig, "augment": AugmentConfig, "data": DataConfig,
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
            raise ConfigError(f"{name}: expected {len(args)} comma-separated values, got {value!r}")
        return tuple(coerce(item, arg, name) for item, arg in zip(items, args))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    try:
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return annotation(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected {annotation.__name__}, got {value!r}") from None


def build_section(cls: type, values: dict[str, Any], section: str, where: str | None = None) -> Any:
    hints = field_types(cls)
    refuse_unknown(section, values, hints, where)
    return cls(**{k: coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()})


def config_from_dict(values: dict[str, Any], where: str | None = None) -> TrainConfig:
    """A validated TrainConfig from any googlenet version's names (`upgrade_config`); the
    `resolved` section of a run's config.yaml is ignored. `where`: what the values were read
    from, for the errors (a recipe file, a checkpoint)."""
    values = upgrade_config({k: v for k, v in values.items() if k != "resolved"})
    unknown = set(values) - set(SECTION_TYPES)
    if unknown:
        place = f"{where}: " if where else ""
        raise ConfigError(f"{place}unknown section(s): {', '.join(sorted(unknown))}; "
                          f"expected {', '.join(SECTION_TYPES)}")
    sections = {name: build_section(cls, values.get(name) or {}, name, where)
                for name, cls in SECTION_TYPES.items()}
    config = TrainConfig(**sections)
    check_config(config)
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
            raise ConfigError(f"unknown configuration field {name!r}")
        values[owner[name]][name] = value
    return config_from_dict(values)


def check_config(config: TrainConfig) -> None:
    """A ConfigError naming the first field whose value is out of range or not a choice."""
    for section, cls in SECTION_TYPES.items():
        for f in fields(cls):
            allowed = f.metadata.get("choices")
            value = getattr(getattr(config, section), f.name)
            if allowed and value is not None and value not in allowed:
                raise ConfigError(f"{section}.{f.name} must be one of {', '.join(allowed)}, "
                                  f"got {value!r}")
    positive = {"optim.batch_size": config.optim.batch_size, "optim.epochs": config.optim.epochs,
                "data.input_size": config.data.input_size, "optim.lr": config.optim.lr,
                "optim.power": config.optim.power}
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{name} must be positive, got {value}")
    if config.model.pretrained_lr_scale < 0:
        raise ConfigError("model.pretrained_lr_scale must be 0 or more, "
                         f"got {config.model.pretrained_lr_scale}")
    try:
        check_width(config.model.width)
    except ValueError as error:
        raise ConfigError(f"model.{error}") from None
    if config.run.threads < 0:
        raise ConfigError(f"run.threads must be 0 (automatic) or more, got {config.run.threads}")
    if config.data.workers < 0:
        raise ConfigError(f"data.workers must be 0 or more, got {config.data.workers}")
    if not 0.0 <= config.optim.ema_decay < 1.0:
        raise ConfigError(f"optim.ema_decay must be in [0, 1), got {config.optim.ema_decay}")


# --- Values derived from the configuration for one run.


@dataclass(frozen=True)
class ResolvedOptim:
    """The learning rate and warm-up a run trains with, given its number of processes."""

    global_batch_size: int
    lr: float  # the effective learning rate
    warmup_epochs: float
    warmup_start: float  # the warm-up's first rate, as a fraction of lr

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_optim(optim: OptimConfig, world_size: int) -> ResolvedOptim:
    """`linear` scaling: lr x global batch / reference batch (Goyal et al. 2017); when that
    raises the rate and no warm-up is set, warm up for SCALED_WARMUP_EPOCHS. A warm-up to a
    raised rate starts from the reference batch's rate (Goyal's gradual warm-up, Sec. 2.2),
    any other from 0. The warm-up is at most MAX_WARMUP_FRACTION of the run: a short run must
    still reach its learning rate."""
    global_batch = optim.batch_size * world_size
    lr, warmup, start = optim.lr, optim.warmup_epochs, 0.0
    if optim.lr_scaling == "linear":
        factor = global_batch / optim.reference_batch_size
        lr, warmup = lr * factor, warmup or (SCALED_WARMUP_EPOCHS if factor > 1 else 0.0)
        start = 1 / factor if factor > 1 and warmup > 0 else 0.0
    return ResolvedOptim(global_batch, lr, min(warmup, MAX_WARMUP_FRACTION * optim.epochs), start)


# --- Recipes: YAML files under googlenet/training/recipes, or a user's own copy.


def recipe_names() -> list[str]:
    folder = resources.files("googlenet.training") / "recipes"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str) -> TrainConfig:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"recipe file {path} does not exist")
        text = path.read_text()
    else:
        if name_or_path not in recipe_names():
            raise ConfigError(f"unknown recipe {name_or_path!r}; choose one of "
                             f"{', '.join(recipe_names())} or give a YAML file")
        text = (resources.files("googlenet.training") / "recipes" / f"{name_or_path}.yaml").read_text()
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"recipe {name_or_path}: not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"recipe {name_or_path}: expected a mapping of sections")
    return config_from_dict(values, f"recipe {name_or_path}")


def dump_yaml(config: TrainConfig, resolved: dict[str, Any] | None = None) -> str:
    values = config_to_dict(config)
    if resolved:
        values["resolved"] = resolved
    return yaml.safe_dump(values, sort_keys=False)
