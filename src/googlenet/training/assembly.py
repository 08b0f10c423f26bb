"""Putting a run together: the configuration a new run resolves to (its starting weights,
--init-from, its variant, absolute paths, its directory), then the pieces built from it
(the model, the optimizer and the rest of `TrainingParts`, the loaders).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from googlenet.artifact import rundir
from googlenet.artifact.build import artifact_of, model_from_artifact
from googlenet.artifact.record import Artifact
from googlenet.data.config import with_preprocessing
from googlenet.data.loader import make_loader
from googlenet.data.splits import Datasets
from googlenet.errors import ConfigError, DataError
from googlenet.model.network import GoogLeNet, build_network
from googlenet.runtime.device import resolve_precision
from googlenet.runtime.distributed import DistInfo
from googlenet.training.averaging import build_average
from googlenet.training.callbacks import Hooks
from googlenet.training.config import ResolvedOptim, TrainConfig, load_recipe
from googlenet.training.engine import AuxForward, TrainingParts
from googlenet.training.finetune import freeze_through, parameter_groups
from googlenet.training.schedule import build_scheduler
from googlenet.weights.published import PUBLISHED
from googlenet.weights.sources import load_artifact

Weights = str | Path | Artifact | GoogLeNet | None  # what `train` may start from
PATH_FIELDS = (("data", "path"), ("data", "train_dir"), ("data", "val_dir"), ("data", "cache_dir"),
               ("run", "output"), ("model", "weights"), ("model", "init_from"))


# --- The configuration a new run resolves to.


def init_seed(config: TrainConfig) -> int:
    """The seed of a run's initial weights: --init-seed, else --seed."""
    return config.run.seed if config.run.init_seed is None else config.run.init_seed


def resolve_new_run(config: TrainConfig, weights: Weights
                    ) -> tuple[TrainConfig, Artifact | None, Artifact | None]:
    """A new run's configuration, resolved, and the weights it starts from: (configuration,
    the weights fine-tuned from, the initial weights of init_from). `weights` (a model source,
    an Artifact or a GoogLeNet) or else model.weights; model.weights records where they came
    from (for weights in memory, their record's source)."""
    given = weights_in_memory(weights)
    named = str(weights) if weights is not None and given is None else None
    asked = config.model.weights
    if weights is not None and asked and asked != named:
        raise ConfigError(f"the starting weights are given twice: {named or given.source} and "
                          f"model.weights {asked}; give one")
    if named:
        config = with_weights_named(config, named)
    config, initial = resolve_init_from(config, weights_given=given is not None)
    start = given or (load_artifact(config.model.weights) if config.model.weights else None)
    config = resolve_variant(config, start)
    if start is not None:
        config = apply_weights_preprocessing(config, start)
    config = absolute_paths(config)  # a run's records hold where its data is from anywhere
    if given is not None:  # no path: recorded as their record names them
        config = with_weights_named(config, given.source)
    return config, start, initial


def with_weights_named(config: TrainConfig, weights: str) -> TrainConfig:
    return dataclasses.replace(config, model=dataclasses.replace(config.model, weights=weights))


def weights_in_memory(weights: Weights) -> Artifact | None:
    """The record and weights of an Artifact or a GoogLeNet given as the starting weights."""
    if isinstance(weights, GoogLeNet):
        return artifact_of(weights)
    return weights if isinstance(weights, Artifact) else None


def resolve_init_from(config: TrainConfig, weights_given: bool = False
                      ) -> tuple[TrainConfig, Artifact | None]:
    """--init-from: a run directory gives its init seed and model (the same weights from the
    same torch version); a weights file or checkpoint gives its weights exactly. The variant
    must agree; the auxiliary heads and the width follow the source (they shape its weights)."""
    source = config.model.init_from
    if not source:
        return config, None
    if config.model.weights or weights_given:
        raise ConfigError("--init-from and --model both give the starting weights: choose one")
    run_config = Path(source) / rundir.CONFIG
    if run_config.is_file():
        other = load_recipe(str(run_config))  # a run's record reads as a recipe
        asked = config.run.init_seed
        if asked is not None and asked != init_seed(other):
            raise ConfigError(f"--init-seed {asked} contradicts --init-from {source}, whose "
                              f"initial weights came from init seed {init_seed(other)}")
        if config.model.variant not in (None, other.model.variant):
            raise ConfigError(f"--init-from {source}: that run's variant is "
                              f"{other.model.variant!r}, this one's {config.model.variant!r}")
        model = dataclasses.replace(config.model, variant=other.model.variant,
                                    aux_logits=other.model.aux_logits, width=other.model.width)
        run = dataclasses.replace(config.run, init_seed=init_seed(other))
        return dataclasses.replace(config, model=model, run=run), None
    initial = load_artifact(source)
    if config.model.variant not in (None, initial.variant):
        raise ConfigError(f"--init-from {source} holds a {initial.variant!r} model, this run "
                          f"asks for {config.model.variant!r}")
    model = dataclasses.replace(config.model, variant=initial.variant, aux_logits=initial.aux_logits,
                                width=initial.width)
    return dataclasses.replace(config, model=model), initial


def resolve_variant(config: TrainConfig, weights: Artifact | None) -> TrainConfig:
    """model.variant unset: the weights' variant, else paper. Set and different from the
    weights': a contradiction, refused."""
    asked = config.model.variant
    if weights is not None and asked is not None and asked != weights.variant:
        raise ConfigError(f"{weights.source} holds a {weights.variant!r} model, but the "
                          f"configuration asks for variant {asked!r}: leave the variant unset "
                          "(it follows the weights) or choose weights of that variant")
    variant = weights.variant if weights is not None else (asked or "paper")
    return dataclasses.replace(config, model=dataclasses.replace(config.model, variant=variant))


def apply_weights_preprocessing(config: TrainConfig, weights: Artifact) -> TrainConfig:
    """Fine-tuning trains the weights' variant on data normalised as the weights expect."""
    return dataclasses.replace(
        config, model=dataclasses.replace(config.model, variant=weights.variant, width=weights.width),
        data=with_preprocessing(config.data, weights.preprocessing))


def absolute_paths(config: TrainConfig) -> TrainConfig:
    """The configuration with its file paths absolute ("digits" and published weight names
    stay names), so that the run's records work from any directory."""
    sections: dict[str, dict[str, str]] = {}
    for section, name in PATH_FIELDS:
        value = getattr(getattr(config, section), name)
        if value and value != "digits" and value not in PUBLISHED:
            values = sections.setdefault(section, {})
            values[name] = str(Path(value).expanduser().absolute())
    return dataclasses.replace(config, **{
        section: dataclasses.replace(getattr(config, section), **values)
        for section, values in sections.items()})


def new_run_dir(path: Path) -> Path:
    if rundir.last_checkpoint(path).exists():
        raise ConfigError(f"{path} already holds a run ({rundir.LAST}); resume it, or choose another "
                          "output directory")
    return path


# --- The pieces.


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_model(config: TrainConfig, num_classes: int, device: torch.device,
               weights: Artifact | None = None, initial: Artifact | None = None) -> GoogLeNet:
    """The model to train: from `weights` (fine-tuning), from `initial` (--init-from a file:
    every weight as it is), or freshly initialised from the init seed (also on resume, where
    the checkpoint's weights are loaded afterwards)."""
    m = config.model
    if weights is not None:
        model = model_from_artifact(weights, num_classes, m.aux_logits, m.dropout, m.aux_dropout)
    else:
        # Sec. 7: the ensemble's models share their initial weights and differ in sampling, so
        # the weights draw from a seed of their own, leaving the sampling's generator as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed(config))
            model = build_network(m.variant, num_classes=num_classes, aux_logits=m.aux_logits,
                                dropout=m.dropout, aux_dropout=m.aux_dropout, width=m.width)
        if initial is not None:
            load_initial_weights(model, initial)
    if m.freeze:
        freeze_through(model, m.freeze)
    memory_format = torch.channels_last if config.run.channels_last else torch.contiguous_format
    return model.to(device, memory_format=memory_format)


def load_initial_weights(model: GoogLeNet, initial: Artifact) -> None:
    theirs, mine = initial.state_dict or {}, model.state_dict()
    if theirs.keys() == mine.keys() and all(theirs[k].shape == v.shape for k, v in mine.items()):
        model.load_state_dict(theirs)
    else:
        raise ConfigError(f"--init-from {initial.source}: its weights ({initial.variant}, "
                          f"{len(initial.classes)} classes) are not this model's ("
                          f"{model.variant.name}, {model.num_classes} classes); start from them "
                          "with --model to fine-tune instead")


def build_optimizer(model: nn.Module, config: TrainConfig, lr: float) -> torch.optim.Optimizer:
    optim = config.optim
    groups = parameter_groups(model, lr, optim.weight_decay, config.model.pretrained_lr_scale,
                              optim.bias_lr_scale)
    if optim.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=optim.momentum, nesterov=optim.nesterov)


def build_parts(model: GoogLeNet, config: TrainConfig, device: torch.device, info: DistInfo,
                steps_per_epoch: int, resolved: ResolvedOptim) -> TrainingParts:
    precision = resolve_precision(config.run.amp, device)
    step_model: nn.Module = AuxForward(model)
    if info.enabled:
        step_model = DistributedDataParallel(
            step_model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.run.compile:
        step_model = torch.compile(step_model)
    optimizer = build_optimizer(model, config, resolved.lr)
    return TrainingParts(
        model=model, step_model=step_model, optimizer=optimizer,
        scheduler=build_scheduler(optimizer, config.optim, steps_per_epoch, resolved),
        scaler=torch.amp.GradScaler(device.type, enabled=precision.dtype == torch.float16),
        average=build_average(model, config.optim),
        precision=precision, device=device, dist=info, aux_weight=config.model.aux_weight,
        label_smoothing=config.optim.label_smoothing, grad_clip=config.optim.grad_clip,
        channels_last=config.run.channels_last and device.type != "mps")


@dataclass
class Loaders:
    train: Any
    val: Any
    bn_stats: Any  # the training images in the same order on every process (engine.estimate_batch_norm)


def fit_batch_size(config: TrainConfig, train_images: int, info: DistInfo, hooks: Hooks) -> TrainConfig:
    """A data set smaller than one batch per process trains with the largest batch that fits."""
    batch, fits = config.optim.batch_size, train_images // info.world_size
    if batch <= fits:
        return config
    if fits < 1:
        raise DataError(f"{train_images} training images cannot give every one of "
                        f"{info.world_size} processes an image")
    hooks.on_message(f"batch size lowered from {batch} to {fits}: {train_images} training images "
                     f"over {info.world_size} process(es)")
    return dataclasses.replace(config, optim=dataclasses.replace(config.optim, batch_size=fits))


def build_loaders(datasets: Datasets, config: TrainConfig, info: DistInfo,
                  device: torch.device) -> Loaders:
    common = dict(workers=config.data.workers, seed=config.run.seed, rank=info.rank,
                  world_size=info.world_size, pin_memory=device.type == "cuda")
    batch = config.optim.batch_size
    return Loaders(make_loader(datasets.train, batch, train=True, **common),
                   make_loader(datasets.val, batch, train=False, **common),
                   # no workers of its own: a few batches per epoch
                   make_loader(datasets.train, batch, train=True,
                               **{**common, "rank": 0, "world_size": 1, "workers": 0}))
