"""`googlenet train`: put the parts together, run the epochs, log, checkpoint, resume."""

from __future__ import annotations

import dataclasses
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .averaging import ModelEma
from .checkpoint import all_finite, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from .config import TrainConfig, config_from_dict, config_to_dict, dump_yaml
from .data import Datasets, load_datasets, make_loader
from .device import resolve_device, resolve_precision
from .distributed import DistInfo, barrier, init_distributed, shutdown_distributed
from .engine import (
    AuxForward,
    EpochLimits,
    EpochResult,
    Progress,
    TrainingParts,
    TrainingStopped,
    ValidationResult,
    evaluate,
    train_one_epoch,
)
from .finetune import freeze_through, parameter_groups
from .model import GoogLeNet, build_model
from .pretrained.apply import model_from_weights
from .pretrained.sources import Weights, load_weights
from .runs import RunLog, default_run_dir
from .schedule import build_scheduler

EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: stopped by a signal; `--resume` continues


@dataclass
class TrainResult:
    run_dir: Path
    stop_reason: str  # completed | signal | max_steps
    epochs_done: int
    best_top1: float | None
    last_metrics: dict[str, Any] | None


# --- Seeds.


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- Stop signals.


class StopSignals:
    """SIGINT/SIGTERM ask the run to stop after the current step; a second SIGINT aborts."""

    def __init__(self) -> None:
        self.received: int | None = None

    def handle(self, signum: int, frame: Any) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
              "(press Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)

    @contextmanager
    def installed(self) -> Iterator[StopSignals]:
        previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


# --- Building the parts.


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    optim = config.optim
    groups = parameter_groups(model, optim.lr, optim.weight_decay, config.model.pretrained_lr_scale)
    if optim.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=optim.lr)
    return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov)


def build_parts(model: GoogLeNet, config: TrainConfig, device: torch.device, info: DistInfo,
                steps_per_epoch: int) -> TrainingParts:
    precision = resolve_precision(config.run.amp, device)
    step_model: nn.Module = AuxForward(model)
    if info.enabled:
        step_model = DistributedDataParallel(
            step_model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.run.compile:
        step_model = torch.compile(step_model)
    optimizer = build_optimizer(model, config)
    return TrainingParts(
        model=model, step_model=step_model, optimizer=optimizer,
        scheduler=build_scheduler(optimizer, config.optim, steps_per_epoch),
        scaler=torch.amp.GradScaler(device.type, enabled=precision.dtype == torch.float16),
        ema=ModelEma(model, config.optim.ema_decay) if config.optim.ema_decay > 0 else None,
        precision=precision, device=device, dist=info, aux_weight=config.model.aux_weight,
        label_smoothing=config.optim.label_smoothing, grad_clip=config.optim.grad_clip,
        channels_last=config.run.channels_last and device.type != "mps")


def make_model(config: TrainConfig, num_classes: int, device: torch.device,
               weights: Weights | None = None) -> GoogLeNet:
    """The model to train: from `weights` (fine-tuning) or freshly initialised (also on resume,
    where the checkpoint's weights are loaded afterwards)."""
    m = config.model
    if weights is not None:
        model = model_from_weights(weights, num_classes, m.aux_logits, m.dropout, m.aux_dropout)
    else:
        model = build_model(m.variant, num_classes=num_classes, aux_logits=m.aux_logits,
                            dropout=m.dropout, aux_dropout=m.aux_dropout)
    if m.freeze:
        freeze_through(model, m.freeze)
    memory_format = torch.channels_last if config.run.channels_last else torch.contiguous_format
    return model.to(device, memory_format=memory_format)


def apply_weights_preprocessing(config: TrainConfig, weights: Weights) -> TrainConfig:
    """Fine-tuning trains the weights' variant on data normalised as the weights expect."""
    norm = weights.normalization
    return dataclasses.replace(
        config, model=dataclasses.replace(config.model, variant=weights.variant),
        data=dataclasses.replace(config.data, mean=norm.mean, std=norm.std))


# --- Checkpoints.


def checkpoint_state(parts: TrainingParts, progress: Progress, config: TrainConfig,
                     classes: list[str], best_top1: float | None,
                     metrics: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "model": parts.model.state_dict(),
        "ema": parts.ema.state_dict() if parts.ema else None,
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict(),
        "progress": dataclasses.asdict(progress),
        "rng": capture_rng(),
        "config": config_to_dict(config),
        "classes": list(classes),
        "best_top1": best_top1,
        "metrics": metrics,
    }


def restore_parts(parts: TrainingParts, state: dict[str, Any]) -> Progress:
    parts.model.load_state_dict(state["model"])
    if parts.ema is not None and state.get("ema"):
        parts.ema.load_state_dict(state["ema"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    parts.scaler.load_state_dict(state["scaler"])
    return Progress(**state["progress"])


def save_run_checkpoint(run_dir: Path, name: str, state: dict[str, Any]) -> None:
    """Never overwrite a good checkpoint with non-finite weights."""
    if not all_finite(state["model"]) or (state["ema"] and not all_finite(state["ema"]["module"])):
        raise TrainingStopped(f"the weights are no longer finite; {name} was not overwritten")
    save_checkpoint(run_dir / name, state)


def resume_state(resume: str | Path) -> tuple[dict[str, Any], Path]:
    path = Path(resume)
    checkpoint = path / "last.pt" if path.is_dir() else path
    if not checkpoint.exists():
        raise FileNotFoundError(f"nothing to resume: {checkpoint} does not exist")
    return load_checkpoint(checkpoint), checkpoint.parent


def config_for_resume(state: dict[str, Any], overrides: Callable[[TrainConfig], TrainConfig]
                      ) -> TrainConfig:
    return overrides(config_from_dict(state["config"]))


# --- The loop.


def epoch_record(epoch: int, lr: float, train: EpochResult, val: ValidationResult | None,
                 progress: Progress) -> dict[str, Any]:
    record: dict[str, Any] = {
        "epoch": epoch, "lr": lr, "train_loss": train.loss, "train_top1": train.top1,
        "val_loss": val.loss if val else None, "val_top1": val.top1 if val else None,
        "val_top5": val.top5 if val else None, "val_images": val.images if val else None,
        "images_per_second": train.images_per_second, "seconds": train.seconds,
        "step": progress.step, "bad_images": len(train.bad_images),
        "nonfinite_skipped": train.nonfinite_skipped,
    }
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


class ProgressBar:
    def __init__(self, total: int, initial: int, description: str, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, desc=description, unit="batch",
                        disable=not enabled, leave=False, dynamic_ncols=True, file=sys.stderr)

    def update(self, result: EpochResult, mean_loss: float) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{mean_loss:.3f}", img_s=f"{result.images_per_second:.0f}",
                             refresh=False)

    def close(self) -> None:
        self.bar.close()


def train(config: TrainConfig, resume: str | Path | None = None,
          overrides: Callable[[TrainConfig], TrainConfig] = lambda c: c,
          log: Callable[[str], None] = print) -> TrainResult:
    """Train as `config` says; with `resume` (a run directory or checkpoint) continue that run.

    With `resume`, the run's saved configuration is used, with `overrides` applied on top
    (for example more epochs).
    """
    stop = StopSignals()
    with stop.installed():  # from the start, so that an early Ctrl-C still ends cleanly
        state, run_dir = resume_state(resume) if resume else (None, None)
        weights = None
        if state is not None:
            config = config_for_resume(state, overrides)
        else:
            if config.model.weights:
                weights = load_weights(config.model.weights)
                config = apply_weights_preprocessing(config, weights)
            if config.run.output:
                run_dir = new_run_dir(Path(config.run.output))
        device = resolve_device(config.run.device)
        info = init_distributed(device.type)
        if info.enabled and device.type == "cuda":
            device = torch.device("cuda", info.local_rank)
            torch.cuda.set_device(device)
        try:
            if run_dir is None:
                run_dir = default_run_dir(config.run.name)
            return _train(config, state, weights, run_dir, device, info, stop, log)
        finally:
            shutdown_distributed()


def new_run_dir(path: Path) -> Path:
    if (path / "last.pt").exists():
        raise ValueError(f"{path} already holds a run (last.pt); continue it with "
                         f"`googlenet train --resume {path}` or choose another --output")
    return path


@dataclass
class Loaders:
    train: Any
    val: Any


def build_loaders(datasets: Datasets, config: TrainConfig, info: DistInfo,
                  device: torch.device) -> Loaders:
    common = dict(workers=config.data.workers, seed=config.run.seed, rank=info.rank,
                  world_size=info.world_size, pin_memory=device.type == "cuda")
    batch = config.optim.batch_size
    loaders = Loaders(make_loader(datasets.train, batch, train=True, **common),
                      make_loader(datasets.val, batch, train=False, **common))
    if len(loaders.train) == 0:
        raise ValueError(f"{len(datasets.train)} training images make no full batch of {batch} "
                         f"per process; lower --batch-size")
    return loaders


def _train(config: TrainConfig, state: dict[str, Any] | None, weights: Weights | None, run_dir: Path,
           device: torch.device, info: DistInfo, stop: StopSignals,
           log: Callable[[str], None]) -> TrainResult:
    seed_everything(config.run.seed)
    datasets: Datasets = load_datasets(config.data, config.augment, config.run.seed)
    if state is not None and list(state["classes"]) != list(datasets.classes):
        raise ValueError("the data's classes differ from the checkpoint's: "
                         f"{datasets.classes} vs {state['classes']}")
    model = make_model(config, len(datasets.classes), device, weights)
    loaders = build_loaders(datasets, config, info, device)
    parts = build_parts(model, config, device, info, len(loaders.train))
    progress, best_top1 = Progress(), None
    if state is not None:
        progress = restore_parts(parts, state)
        best_top1 = state.get("best_top1")
        restore_rng(state["rng"])
    else:
        torch.manual_seed(config.run.seed + info.rank)  # dropout differs across ranks
    run_log = RunLog(run_dir, dump_yaml(config), resumed=state is not None) if info.is_main else None
    try:
        if run_log is not None:
            if state is not None:
                run_log.drop_epochs_after(progress.epoch)
            log(f"run directory: {run_dir}")
            if weights is not None:
                log(f"fine-tuning from {weights.source}" + (
                    f", frozen through {config.model.freeze}" if config.model.freeze else ""))
            log(f"training {config.model.variant} on {len(datasets.train)} images, "
                f"{len(datasets.classes)} classes, {device.type}, {parts.precision.name}, "
                f"{info.world_size} process(es), batch {config.optim.batch_size} per process")
        loop = EpochLoop(config, parts, loaders, datasets.classes, run_dir, run_log, info, stop,
                         log, progress, best_top1, state.get("metrics") if state else None)
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
    stop: StopSignals
    log: Callable[[str], None]
    progress: Progress
    best_top1: float | None
    last_metrics: dict[str, Any] | None

    def limits(self) -> EpochLimits:
        run = self.config.run
        return EpochLimits(max_steps=run.max_steps, max_nonfinite=run.max_nonfinite,
                           max_bad_images=self.config.data.max_bad_images,
                           should_stop=lambda: self.stop.received is not None)

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
        if self.info.is_main and self.best_top1 is not None:
            self.log(f"done: best validation top-1 {100 * self.best_top1:.2f}%; "
                     f"run directory: {self.run_dir}")
        return TrainResult(self.run_dir, "completed", self.progress.epoch, self.best_top1,
                           self.last_metrics)

    def train_epoch(self) -> EpochResult:
        epoch, loader = self.progress.epoch, self.loaders.train
        loader.set_epoch(epoch, skip_batches=self.progress.batch_in_epoch)
        bar = ProgressBar(len(loader), self.progress.batch_in_epoch,
                          f"epoch {epoch + 1}/{self.config.optim.epochs}",
                          self.info.is_main and not self.config.run.quiet)
        try:
            return train_one_epoch(self.parts, loader, self.progress, self.limits(), bar.update)
        finally:
            bar.close()

    def checkpoint(self) -> dict[str, Any]:
        return checkpoint_state(self.parts, self.progress, self.config, self.classes,
                                self.best_top1, self.last_metrics)

    def interrupted(self) -> TrainResult:
        reason = "signal" if self.stop.received is not None else "max_steps"
        if self.info.is_main:
            save_run_checkpoint(self.run_dir, "last.pt", self.checkpoint())
            self.log(f"stopped ({reason}) at step {self.progress.step}, in epoch "
                     f"{self.progress.epoch + 1}; continue with: "
                     f"googlenet train --resume {self.run_dir}")
        barrier(self.info)
        return TrainResult(self.run_dir, reason, self.progress.epoch, self.best_top1,
                           self.last_metrics)

    def end_of_epoch(self, lr: float, result: EpochResult) -> None:
        epochs, parts = self.config.optim.epochs, self.parts
        val = None
        if self.progress.epoch % self.config.run.eval_every == 0 or self.progress.epoch == epochs:
            # Sec. 6: the Polyak-averaged weights are the ones evaluated (and kept as best.pt).
            val = evaluate(parts.ema.module if parts.ema else parts.model, self.loaders.val, parts)
        self.last_metrics = epoch_record(self.progress.epoch, lr, result, val, self.progress)
        self.last_metrics["elapsed_seconds"] = time.perf_counter() - self.started
        is_best = val is not None and (self.best_top1 is None or val.top1 > self.best_top1)
        if is_best:
            self.best_top1 = val.top1
        if self.run_log is not None:
            self.run_log.log_epoch(self.last_metrics)
            self.log(summary_line(self.last_metrics, epochs, result))
            checkpoint = self.checkpoint()
            save_run_checkpoint(self.run_dir, "last.pt", checkpoint)
            if is_best:
                save_run_checkpoint(self.run_dir, "best.pt", checkpoint)
        barrier(self.info)
