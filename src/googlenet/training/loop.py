"""`train(config)`: put the parts together, run the epochs, log, checkpoint, resume.

A library function: it installs no signal handler, draws no progress bar and prints
nothing. The caller passes `callbacks` (messages, batches, epochs) and `should_stop` (the
CLI's Ctrl-C), so it runs the same from the shell, a thread or a notebook:

    result = train(load_recipe("digits"), callbacks=[PrintMessages()])
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from googlenet.artifact import rundir, schema
from googlenet.artifact.build import model_from_artifact
from googlenet.artifact.record import Artifact, Provenance
from googlenet.data.config import preprocessing, with_preprocessing
from googlenet.data.loader import make_loader
from googlenet.data.splits import Datasets, load_datasets
from googlenet.errors import ConfigError, DataError, TrainingStopped
from googlenet.model.network import GoogLeNet, build_network
from googlenet.runtime.device import resolve_device, resolve_precision
from googlenet.runtime.distributed import (
    DistInfo,
    all_gather,
    barrier,
    init_distributed,
    shutdown_distributed,
)
from googlenet.runtime.files import DirectoryLock, remove_stale_temporaries
from googlenet.runtime.threads import AdaptiveThreads, run_thread_count
from googlenet.training.averaging import build_average
from googlenet.training.checkpoint import (
    all_finite,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from googlenet.training.config import (
    ResolvedOptim,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    dump_yaml,
    load_recipe,
    resolve_optim,
    with_overrides,
)
from googlenet.training.engine import (
    AuxForward,
    EpochLimits,
    EpochResult,
    Progress,
    TrainingParts,
    ValidationResult,
    train_one_epoch,
    validate,
)
from googlenet.training.finetune import freeze_through, parameter_groups
from googlenet.training.runs import RunLog, default_run_dir
from googlenet.training.schedule import build_scheduler
from googlenet.weights.published import PUBLISHED
from googlenet.weights.sources import load_artifact

STOP_REASONS = ("completed", "signal", "max_steps", "budget")
PATH_FIELDS = (("data", "path"), ("data", "train_dir"), ("data", "val_dir"), ("data", "cache_dir"),
               ("run", "output"), ("model", "weights"), ("model", "init_from"))


@dataclass
class TrainResult:
    run_dir: Path
    stop_reason: str  # one of STOP_REASONS: signal means `should_stop` asked
    epochs_done: int
    best_top1: float | None
    last_metrics: dict[str, Any] | None
    model: GoogLeNet | None = None  # the trained model (its averaged weights when averaging)


class Callback:
    """Hooks a caller of `train` may override; every one is optional (rank 0 only)."""

    def on_message(self, message: str) -> None:
        """A line for the user: the run directory, the setting, each epoch's summary."""

    def on_epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        """Epoch `epoch` (0-based) starts with `done` of its `batches` already done."""

    def on_batch(self, result: EpochResult, mean_loss: float) -> None:
        """One more training batch done."""

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        """The epoch's metrics, as written to metrics.jsonl."""


class PrintMessages(Callback):
    """The run's messages on stdout, as the CLI prints them."""

    def on_message(self, message: str) -> None:
        print(message, flush=True)


class ProgressBar(Callback):
    """A bar per epoch: its batches, the mean loss and the speed so far. tqdm.auto draws it: a
    widget in Jupyter, text elsewhere (on `file`, default stderr); `disable`: none at all."""

    def __init__(self, file: TextIO | None = None, disable: bool = False) -> None:
        self.file, self.disable = file, disable
        self.bar: Any = None

    def on_epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        self.close()
        self.bar = tqdm(total=batches, initial=done, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                        disable=self.disable, leave=False, dynamic_ncols=True, file=self.file)

    def on_batch(self, result: EpochResult, mean_loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{mean_loss:.3f}", img_s=f"{result.images_per_second:.0f}",
                                 refresh=False)

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class FollowFreeCores(Callback):
    """torch's intra-op threads follow the cores other processes leave free, re-measured every
    `interval` seconds (runtime.threads: why, and the measurement). For one process per
    machine: under torchrun each rank is the others' competitor (torchrun sets one thread).
    Each change is said and handed to `record` (the loop writes it into metrics.jsonl): the
    weights then depend on the machine's load, and the run's records must show it."""

    def __init__(self, say: Callable[[str], None] = lambda _: None, interval: float = 5.0,
                 record: Callable[[int, str], None] = lambda threads, why: None) -> None:
        self.policy, self.say, self.record, self.started = AdaptiveThreads(interval), say, record, False

    def on_epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        if not self.started:  # the first epoch of this call: measure before the first step
            self.started = True
            before = torch.get_num_threads()
            threads = self.policy.start()
            if threads < self.policy.cores:
                self.say(f"{threads} of {self.policy.cores} cores free: other processes use the rest; "
                         "using " + ("1 thread" if threads == 1 else f"{threads} threads"))
            if threads != before:
                self.record(threads, "free cores at the start")

    def on_batch(self, result: EpochResult, mean_loss: float) -> None:
        change = self.policy.update()
        if change is not None:
            threads, load = change
            self.say(f"intra-op threads now {threads} (other processes used {load:.1f} of "
                     f"{self.policy.cores} cores over the last {self.policy.interval:g} s)")
            self.record(threads, f"other processes used {load:.1f} cores")


class Hooks(Callback):
    """The callbacks of one run, called in order; silent on ranks other than 0."""

    def __init__(self, callbacks: Sequence[Callback], enabled: bool) -> None:
        self.callbacks = list(callbacks) if enabled else []

    def on_message(self, message: str) -> None:
        for c in self.callbacks:
            c.on_message(message)

    def on_epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        for c in self.callbacks:
            c.on_epoch_start(epoch, epochs, batches, done)

    def on_batch(self, result: EpochResult, mean_loss: float) -> None:
        for c in self.callbacks:
            c.on_batch(result, mean_loss)

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        for c in self.callbacks:
            c.on_epoch_end(record)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- Building the parts.


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


def init_seed(config: TrainConfig) -> int:
    """The seed of a run's initial weights: --init-seed, else --seed."""
    return config.run.seed if config.run.init_seed is None else config.run.init_seed


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
                          "with --weights to fine-tune instead")


def resolve_init_from(config: TrainConfig) -> tuple[TrainConfig, Artifact | None]:
    """--init-from: a run directory gives its init seed and model (the same weights from the
    same torch version); a weights file or checkpoint gives its weights exactly. The variant
    must agree; the auxiliary heads and the width follow the source (they shape its weights)."""
    source = config.model.init_from
    if not source:
        return config, None
    if config.model.weights:
        raise ConfigError("--init-from and --weights both give the starting weights: choose one")
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


def apply_weights_preprocessing(config: TrainConfig, weights: Artifact) -> TrainConfig:
    """Fine-tuning trains the weights' variant on data normalised as the weights expect."""
    return dataclasses.replace(
        config, model=dataclasses.replace(config.model, variant=weights.variant, width=weights.width),
        data=with_preprocessing(config.data, weights.preprocessing))


def run_artifact(config: TrainConfig, classes: list[str], metrics: dict[str, Any] | None
                 ) -> dict[str, Any]:
    """The artifact record a checkpoint of this run carries (its weights stored beside it)."""
    artifact = Artifact(config.model.variant, tuple(classes), preprocessing(config.data),
                        aux_logits=config.model.aux_logits, width=config.model.width,
                        provenance=Provenance(config=config_to_dict(config), metrics=metrics))
    return schema.to_dict(artifact)


# --- Checkpoints.


def checkpoint_state(parts: TrainingParts, progress: Progress, config: TrainConfig,
                     classes: list[str], best_top1: float | None,
                     metrics: dict[str, Any] | None, rng_per_rank: list[dict[str, Any]],
                     threads: int) -> dict[str, Any]:
    """Everything a resume needs; `rng_per_rank`: every process's RNG states (each rank
    draws its own dropout), gathered by `all_gather`; `threads`: the intra-op threads, which
    the resume uses again (convolution results depend on them)."""
    return {
        "model": parts.model.state_dict(),
        "ema": parts.average.state_dict() if parts.average else None,  # the key of older files
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict(),
        "progress": dataclasses.asdict(progress),
        "rng_per_rank": rng_per_rank,
        "threads": threads,
        "config": config_to_dict(config),
        "classes": list(classes),
        "artifact": run_artifact(config, classes, metrics),
        "best_top1": best_top1,
        "metrics": metrics,
    }


def restore_parts(parts: TrainingParts, state: dict[str, Any]) -> Progress:
    parts.model.load_state_dict(state["model"])
    if parts.average is not None and state.get("ema"):
        parts.average.load_state_dict(state["ema"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    parts.scaler.load_state_dict(state["scaler"])
    return Progress(**state["progress"])


def save_run_checkpoint(run_dir: Path, name: str, state: dict[str, Any]) -> None:
    """Never overwrite a good checkpoint with non-finite weights."""
    if not all_finite(state["model"]) or (state["ema"] and not all_finite(state["ema"]["module"])):
        raise TrainingStopped(f"the weights are no longer finite; {name} was not overwritten")
    save_checkpoint(run_dir / name, state)


def checkpoint_to_resume(run: str | Path) -> Path:
    """A run directory's last.pt, or the checkpoint file given."""
    path = Path(run)
    checkpoint = rundir.last_checkpoint(path) if path.is_dir() else path
    if not checkpoint.exists():
        raise FileNotFoundError(f"nothing to resume: {checkpoint} does not exist")
    return checkpoint


ARCHITECTURE_FIELDS = ("variant", "aux_logits")  # what a resumed run cannot change


def config_for_resume(state: dict[str, Any],
                      overrides: Mapping[str, Any] | Callable[[TrainConfig], TrainConfig] | None,
                      where: str | None = None) -> TrainConfig:
    """The run's saved configuration with `overrides` (flat fields, or a function) on top;
    the network's fields keep their saved values."""
    saved = config_from_dict(state["config"], where)
    if overrides is None:
        config = saved
    elif isinstance(overrides, Mapping):
        config = with_overrides(saved, dict(overrides))
    else:
        config = overrides(saved)
    for name in ARCHITECTURE_FIELDS:
        before, after = getattr(saved.model, name), getattr(config.model, name)
        if before != after:
            raise ConfigError(f"the run was trained with model.{name} = {before}; a resumed run "
                              f"keeps its network, so it cannot become {after}")
    return config


def restore_rng_of_rank(state: dict[str, Any], info: DistInfo, hooks: Hooks) -> None:
    """Each process continues its own random stream, when the run has as many processes.
    Checkpoints written before every rank's state was kept hold rank 0's alone, under "rng"."""
    per_rank = state.get("rng_per_rank") or [state["rng"]]
    if len(per_rank) == info.world_size:
        restore_rng(per_rank[info.rank])
        return
    restore_rng(per_rank[0])
    torch.manual_seed(state["config"]["run"]["seed"] + info.rank + 1000 * state["progress"]["step"])
    hooks.on_message(f"resumed with {info.world_size} process(es) where the run had {len(per_rank)}: "
                     "it continues, but not bit for bit as it would have")


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


# --- Threads: a fixed count, recorded, kept on resume (runtime.threads says why).


@dataclass
class RunThreads:
    """The intra-op threads of one call of `train`: the count it starts with, whether it
    follows the free cores, and the changes not yet written into an epoch's record."""

    threads: int
    follow: bool
    changes: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def record(self, step: int, threads: int, why: str) -> None:
        self.threads = threads
        self.changes.append({"step": step, "threads": threads, "why": why})

    def drain(self) -> list[dict[str, Any]]:
        changes, self.changes = self.changes, []
        return changes


def run_threads(config: TrainConfig, state: dict[str, Any] | None, info: DistInfo, hooks: Hooks
                ) -> RunThreads:
    """A new run: `run.threads`, else OMP_NUM_THREADS, else every usable core, never the current
    load. A resumed run: the count its checkpoint recorded, unless `run.threads` now asks for
    another, which breaks bit-exactness and is said. Following the free cores (one process
    only) starts from that count and records each change."""
    follow = config.run.follow_free_cores and info.world_size == 1
    saved = state.get("threads") if state is not None else None
    threads, changed = run_thread_count(config.run.threads, saved)
    plan = RunThreads(threads, follow)
    if changed is not None:
        plan.record(state["progress"]["step"], threads, f"--threads {threads} on resume; the run had {saved}")
        hooks.on_message(changed)
    elif state is not None and saved is None:
        hooks.on_message(f"the checkpoint does not record its thread count; using {threads}")
    if follow:
        hooks.on_message("following the free cores: the weights depend on the machine's load "
                         "(each change is logged and recorded in metrics.jsonl)")
    return plan


# --- The loop.


def epoch_record(epoch: int, lr: float, train: EpochResult, val: ValidationResult | None,
                 progress: Progress, threads: RunThreads) -> dict[str, Any]:
    record: dict[str, Any] = {
        "epoch": epoch, "lr": lr, "train_loss": train.loss, "train_top1": train.top1,
        "val_loss": val.loss if val else None, "val_top1": val.top1 if val else None,
        "val_top5": val.top5 if val else None, "val_images": val.images if val else None,
        "images_per_second": train.images_per_second, "seconds": train.seconds,
        "step": progress.step, "bad_images": len(train.bad_images),
        "nonfinite_skipped": train.nonfinite_skipped, "threads": threads.threads,
    }
    changes = threads.drain()
    if changes:  # the weights depend on the thread count: a change is part of the record
        record["thread_changes"] = changes
    return record


def summary_line(record: dict[str, Any], epochs: int, train: EpochResult) -> str:
    line = (f"epoch {record['epoch']}/{epochs}  lr {record['lr']:.4g}  "
            f"train loss {record['train_loss']:.4f}")
    if record["val_top1"] is not None:
        line += (f"  val loss {record['val_loss']:.4f}  top-1 {100 * record['val_top1']:.2f}%  "
                 f"top-5 {100 * record['val_top5']:.2f}%")
    line += f"  {record['images_per_second']:.0f} img/s  {record['seconds']:.1f}s"
    if train.bad_images:
        line += f"  skipped {len(train.bad_images)} unreadable: " + "; ".join(train.bad_images[:5])
    if train.nonfinite_skipped:
        line += f"  skipped {train.nonfinite_skipped} non-finite steps"
    return line


def train(config: TrainConfig, *, weights: str | Path | Artifact | None = None,
          callbacks: Sequence[Callback] = (), should_stop: Callable[[], bool] = lambda: False,
          max_steps: int = 0, deadline: float | None = None) -> TrainResult:
    """Train a new run as `config` says.

    `weights`: start from these weights (fine-tuning): a model source (a published name, a
    run directory, a weights file) or an Artifact; default: the configuration's
    `model.weights`. `should_stop` is asked after every step: when it answers True, the run
    saves last.pt and returns with stop_reason "signal". `max_steps` (this call only, not
    part of the run's configuration): save and return with stop_reason "max_steps" once the
    run reaches that optimizer step. `deadline` (a `time.perf_counter()` time, this call
    only): save and return with stop_reason "budget" once it has passed.
    """
    config = with_weights_source(config, weights)
    config, initial = resolve_init_from(config)
    if isinstance(weights, Artifact):
        start: Artifact | None = weights
    else:
        start = load_artifact(config.model.weights) if config.model.weights else None
    config = resolve_variant(config, start)
    if start is not None:
        config = apply_weights_preprocessing(config, start)
    config = absolute_paths(config)  # a run's records hold where its data is from anywhere
    if isinstance(weights, Artifact):  # not a path: recorded as it names itself
        config = dataclasses.replace(config, model=dataclasses.replace(config.model,
                                                                       weights=weights.source))
    run_dir = new_run_dir(Path(config.run.output)) if config.run.output else None
    return _launch(config, None, run_dir, start, initial, callbacks, should_stop, max_steps, deadline)


def resume(run_dir: str | Path, *,
           overrides: Mapping[str, Any] | Callable[[TrainConfig], TrainConfig] | None = None,
           callbacks: Sequence[Callback] = (), should_stop: Callable[[], bool] = lambda: False,
           max_steps: int = 0, deadline: float | None = None) -> TrainResult:
    """Continue the run in `run_dir` (a run directory, or a checkpoint file) exactly.

    The run's saved configuration is used, with `overrides` on top (for example more
    epochs): flat fields as `training.config.with_overrides` takes them ({"epochs": 40}), or
    a function of the saved configuration. The network's fields (model.variant,
    model.aux_logits) cannot change. `callbacks`, `should_stop`, `max_steps` and `deadline`
    as for `train`.
    """
    checkpoint = checkpoint_to_resume(run_dir)
    state = load_checkpoint(checkpoint)
    config = config_for_resume(state, overrides, str(checkpoint))
    return _launch(config, state, checkpoint.parent, None, None, callbacks, should_stop, max_steps,
                   deadline)


def _launch(config: TrainConfig, state: dict[str, Any] | None, run_dir: Path | None,
            weights: Artifact | None, initial: Artifact | None, callbacks: Sequence[Callback],
            should_stop: Callable[[], bool], max_steps: int, deadline: float | None) -> TrainResult:
    """The device, the processes and the run directory's lock around `_train`; the caller's
    thread count comes back afterwards."""
    device = resolve_device(config.run.device)
    callers_threads = torch.get_num_threads()  # the run sets its own; the caller's come back
    info = init_distributed(device.type)  # torchrun's; the caller's process group if it has one
    try:
        if info.enabled and device.type == "cuda":
            device = torch.device("cuda", info.local_rank)
            torch.cuda.set_device(device)
        if run_dir is None:
            run_dir = default_run_dir(config.run.name)
        hooks = Hooks(callbacks, info.is_main)
        lock = DirectoryLock(run_dir).acquire() if info.is_main else None  # one writer a directory
        try:
            if info.is_main:
                remove_stale_temporaries(run_dir)  # of writes that a kill interrupted
            return _train(config, state, weights, run_dir, device, info, hooks, should_stop, max_steps,
                          deadline, initial)
        finally:
            if lock is not None:
                lock.release()
    finally:
        torch.set_num_threads(callers_threads)
        shutdown_distributed(info)  # only a group made here: a library leaves the caller's


def with_weights_source(config: TrainConfig, weights: str | Path | Artifact | None) -> TrainConfig:
    """`config` with model.weights set to `weights` when that is a model source (a name or a
    path); weights given both ways must agree."""
    if weights is None:
        return config
    if isinstance(weights, Artifact):
        if config.model.weights:
            raise ConfigError(f"weights given twice: {weights.source} and model.weights "
                              f"{config.model.weights}; give one")
        return config
    if config.model.weights and config.model.weights != str(weights):
        raise ConfigError(f"weights given twice: {weights} and model.weights "
                          f"{config.model.weights}; give one")
    return dataclasses.replace(config, model=dataclasses.replace(config.model, weights=str(weights)))


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


@dataclass
class Loaders:
    train: Any
    val: Any


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
                   make_loader(datasets.val, batch, train=False, **common))


def _train(config: TrainConfig, state: dict[str, Any] | None, weights: Artifact | None,
           run_dir: Path, device: torch.device, info: DistInfo, hooks: Hooks,
           should_stop: Callable[[], bool], max_steps: int, deadline: float | None,
           initial: Artifact | None = None) -> TrainResult:
    threads = run_threads(config, state, info, hooks)
    torch.set_num_threads(threads.threads)
    seed_everything(config.run.seed)
    datasets: Datasets = load_datasets(config.data, config.augment, config.run.seed)
    if state is not None and list(state["classes"]) != list(datasets.classes):
        raise DataError("the data's classes differ from the checkpoint's: "
                        f"{datasets.classes} vs {state['classes']}")
    if state is None:
        config = fit_batch_size(config, len(datasets.train), info, hooks)
    model = make_model(config, len(datasets.classes), device, weights, initial)
    loaders = build_loaders(datasets, config, info, device)
    resolved = resolve_optim(config.optim, info.world_size)
    parts = build_parts(model, config, device, info, len(loaders.train), resolved)
    progress, best_top1 = Progress(), None
    if state is not None:
        progress = restore_parts(parts, state)
        best_top1 = state.get("best_top1")
        restore_rng_of_rank(state, info, hooks)
    else:
        torch.manual_seed(config.run.seed + info.rank)  # dropout differs across ranks
    if threads.follow:
        hooks.callbacks.append(FollowFreeCores(
            say=hooks.on_message, record=lambda count, why: threads.record(progress.step, count, why)))
    resolved_values = {**resolved.to_dict(), "init_seed": init_seed(config),
                       "precision": parts.precision.name,
                       "threads": threads.threads, "follow_free_cores": threads.follow}
    run_log = (RunLog(run_dir, dump_yaml(config, resolved_values), resumed=state is not None)
               if info.is_main else None)
    try:
        if run_log is not None and state is not None:
            run_log.drop_epochs_after(progress.epoch)
        hooks.on_message(f"run directory: {run_dir}")
        if weights is not None:
            hooks.on_message(f"fine-tuning from {weights.source}" + (
                f", frozen through {config.model.freeze}" if config.model.freeze else ""))
        elif state is None and (initial is not None or init_seed(config) != config.run.seed):
            hooks.on_message(f"initial weights from {initial.source}" if initial is not None else
                             f"initial weights from init seed {init_seed(config)}, sampling from "
                             f"seed {config.run.seed}")
        hooks.on_message(
            f"training {config.model.variant} on {len(datasets.train)} images, "
            f"{len(datasets.classes)} classes, {device.type}, {parts.precision.name}, "
            f"{info.world_size} process(es), {threads.threads} thread(s), "
            f"batch {config.optim.batch_size} per process, lr {resolved.lr:g}")
        if resolved.warmup_epochs < config.optim.warmup_epochs:
            hooks.on_message(f"warm-up shortened from {config.optim.warmup_epochs:g} to "
                             f"{resolved.warmup_epochs:g} epochs: a quarter of a "
                             f"{config.optim.epochs}-epoch run at most")
        loop = EpochLoop(config, parts, loaders, datasets.classes, run_dir, run_log, info,
                         should_stop, hooks, progress, best_top1,
                         state.get("metrics") if state else None, threads, max_steps, deadline)
        return loop.run()
    finally:
        if run_log is not None:
            run_log.close()


@dataclass
class EpochLoop:
    config: TrainConfig
    parts: TrainingParts
    loaders: Loaders
    classes: list[str]
    run_dir: Path
    run_log: RunLog | None
    info: DistInfo
    should_stop: Callable[[], bool]
    hooks: Hooks
    progress: Progress
    best_top1: float | None
    last_metrics: dict[str, Any] | None
    threads: RunThreads
    max_steps: int = 0
    deadline: float | None = None  # time.perf_counter() time

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.perf_counter() > self.deadline

    def limits(self) -> EpochLimits:
        run = self.config.run
        return EpochLimits(max_steps=self.max_steps, max_nonfinite=run.max_nonfinite,
                           max_bad_images=self.config.data.max_bad_images,
                           should_stop=lambda: self.should_stop() or self.past_deadline())

    def result(self, reason: str) -> TrainResult:
        parts = self.parts
        model = parts.average.module if parts.average is not None else parts.model
        return TrainResult(self.run_dir, reason, self.progress.epoch, self.best_top1,
                           self.last_metrics, model)

    def run(self) -> TrainResult:
        epochs = self.config.optim.epochs
        self.started = time.perf_counter() - (self.last_metrics or {}).get("elapsed_seconds", 0.0)
        while self.progress.epoch < epochs:
            lr = self.parts.optimizer.param_groups[0]["lr"]
            result = self.train_epoch()
            if result.interrupted:
                return self.interrupted()
            self.progress.epoch += 1
            self.progress.batch_in_epoch = 0
            self.end_of_epoch(lr, result)
        if self.best_top1 is not None:
            self.hooks.on_message(f"done: best validation top-1 {100 * self.best_top1:.2f}%; "
                                  f"run directory: {self.run_dir}")
        return self.result("completed")

    def train_epoch(self) -> EpochResult:
        epoch, loader = self.progress.epoch, self.loaders.train
        loader.set_epoch(epoch, skip_batches=self.progress.batch_in_epoch)
        self.hooks.on_epoch_start(epoch, self.config.optim.epochs, len(loader),
                                  self.progress.batch_in_epoch)
        return train_one_epoch(self.parts, loader, self.progress, self.limits(), self.hooks.on_batch)

    def checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint's state on rank 0 (None elsewhere); every rank must call it, since
        every rank's RNG state goes into it."""
        rng_per_rank = all_gather(capture_rng(), self.info)
        if not self.info.is_main:
            return None
        return checkpoint_state(self.parts, self.progress, self.config, self.classes,
                                self.best_top1, self.last_metrics, rng_per_rank, self.threads.threads)

    def interrupted(self) -> TrainResult:
        reason = ("signal" if self.should_stop() else "budget" if self.past_deadline()
                  else "max_steps")
        state = self.checkpoint()
        if self.info.is_main:
            save_run_checkpoint(self.run_dir, rundir.LAST, state)
            why = {"signal": "on a stop signal", "budget": "at the end of its time budget",
                   "max_steps": f"at the step limit of this call ({self.max_steps})"}[reason]
            self.hooks.on_message(f"stopped {why} at step {self.progress.step}, in epoch "
                                  f"{self.progress.epoch + 1}; {rundir.LAST} saved in {self.run_dir}")
        barrier(self.info)
        return self.result(reason)

    def end_of_epoch(self, lr: float, result: EpochResult) -> None:
        epochs, parts = self.config.optim.epochs, self.parts
        val = None
        if self.progress.epoch % self.config.run.eval_every == 0 or self.progress.epoch == epochs:
            # Sec. 6: the Polyak-averaged weights are the ones evaluated (and kept as best.pt).
            val = validate(parts.average.module if parts.average else parts.model, self.loaders.val,
                           parts)
        self.last_metrics = epoch_record(self.progress.epoch, lr, result, val, self.progress,
                                         self.threads)
        self.last_metrics["elapsed_seconds"] = time.perf_counter() - self.started
        is_best = val is not None and (self.best_top1 is None or val.top1 > self.best_top1)
        if is_best:
            self.best_top1 = val.top1
        state = self.checkpoint()
        if self.run_log is not None:
            self.run_log.log_epoch(self.last_metrics)
            self.hooks.on_epoch_end(self.last_metrics)
            self.hooks.on_message(summary_line(self.last_metrics, epochs, result))
            # best.pt first: a kill between the two writes leaves best.pt at this epoch and
            # last.pt at the one before, which the resume redoes; never last.pt ahead of best.pt.
            if is_best:
                save_run_checkpoint(self.run_dir, rundir.BEST, state)
            save_run_checkpoint(self.run_dir, rundir.LAST, state)
        barrier(self.info)
