"""`train(config)` starts a run, `resume(run_dir)` continues one: the loop, top to bottom.

    train / resume   the configuration, the starting weights or the checkpoint
    _launch          the device, the processes, the run directory's lock
    _train           data, model and parts (training.assembly), a resume's state restored
                     (training.run_state), the run's log
    EpochLoop.run    each epoch: train, validate, record (training.report), checkpoint

A library function: it installs no signal handler and prints nothing unless asked. The
caller passes `callbacks` (training.callbacks: messages, epochs, batches; `PrintMessages`
and `ProgressBar` print and draw) and `should_stop` (the CLI's Ctrl-C), so it runs the
same from the shell, a thread or a notebook:

    result = train(load_recipe("digits"), callbacks=[PrintMessages(), ProgressBar()])
    result = resume(result.run_dir, overrides={"epochs": 30})
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from googlenet.artifact import rundir
from googlenet.artifact.record import Artifact
from googlenet.data.splits import Datasets, load_datasets
from googlenet.errors import DataError
from googlenet.model.network import GoogLeNet
from googlenet.runtime.device import resolve_device
from googlenet.runtime.distributed import (
    DistInfo,
    all_gather,
    barrier,
    init_distributed,
    shutdown_distributed,
)
from googlenet.runtime.files import DirectoryLock, remove_stale_temporaries
from googlenet.training.assembly import (
    Loaders,
    Weights,
    build_loaders,
    build_parts,
    fit_batch_size,
    init_seed,
    make_model,
    new_run_dir,
    resolve_new_run,
    seed_everything,
)
from googlenet.training.callbacks import Callback, FollowFreeCores, Hooks
from googlenet.training.checkpoint import capture_rng, load_checkpoint
from googlenet.training.config import TrainConfig, dump_yaml, resolve_optim
from googlenet.training.engine import (
    EpochLimits,
    EpochResult,
    Progress,
    TrainingParts,
    estimate_batch_norm,
    train_one_epoch,
    validate,
)
from googlenet.training.report import epoch_record, summary_line
from googlenet.training.run_state import (
    checkpoint_state,
    checkpoint_to_resume,
    config_for_resume,
    model_state,
    refuse_model_only,
    restore_parts,
    restore_rng_of_rank,
    run_artifact,
    save_run_checkpoint,
)
from googlenet.training.run_threads import RunThreads, run_threads
from googlenet.training.runs import RunLog, default_run_dir

STOP_REASONS = ("completed", "signal", "max_steps", "budget")


@dataclass
class TrainResult:
    run_dir: Path
    stop_reason: str  # one of STOP_REASONS: signal means `should_stop` asked
    epochs_done: int
    best_top1: float | None
    last_metrics: dict[str, Any] | None
    model: GoogLeNet | None = None  # the trained model (its averaged weights when averaging),
    # with the run's record: model.artifact (classes, preprocessing, configuration, metrics)


def train(config: TrainConfig, *, weights: Weights = None,
          callbacks: Sequence[Callback] = (), should_stop: Callable[[], bool] = lambda: False,
          max_steps: int = 0, deadline: float | None = None) -> TrainResult:
    """Train a new run as `config` says.

    `weights`: start from these weights (fine-tuning): a model source (a published name, a
    run directory, a weights file), an Artifact or a GoogLeNet in memory (its record and
    current weights); default: the configuration's `model.weights`. `should_stop` is asked
    after every step: when it answers True, the run saves last.pt and returns with
    stop_reason "signal". `max_steps` (this call only, not part of the run's configuration):
    save and return with stop_reason "max_steps" once the run reaches that optimizer step.
    `deadline` (a `time.perf_counter()` time, this call only): save and return with
    stop_reason "budget" once it has passed. The returned model carries the run's record.
    """
    config, start, initial = resolve_new_run(config, weights)
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
    refuse_model_only(state, checkpoint)
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


def layout_name(channels_last: bool) -> str:
    return "channels_last" if channels_last else "NCHW"


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
    model.artifact = run_artifact(config, datasets.classes, None)  # what it is trained to be
    loaders = build_loaders(datasets, config, info, device)
    resolved = resolve_optim(config.optim, info.world_size)
    parts = build_parts(model, config, device, info, len(loaders.train), resolved)
    progress, best_top1 = Progress(), None
    if state is not None:
        saved_lr = state["optimizer"]["param_groups"][0]["lr"]
        progress = restore_parts(parts, state)
        best_top1 = state.get("best_top1")
        if (before := state["config"]["optim"]["epochs"]) != config.optim.epochs:
            hooks.on_message(
                f"the {config.optim.schedule} schedule now spans {config.optim.epochs} epochs "
                f"instead of {before}: at step {progress.step} its lr is "
                f"{parts.optimizer.param_groups[0]['lr']:.4g} (was {saved_lr:.4g})")
        restore_rng_of_rank(state, info, hooks)
    else:
        torch.manual_seed(config.run.seed + info.rank)  # dropout differs across ranks
    if threads.follow:
        hooks.callbacks.append(FollowFreeCores(
            say=hooks.on_message, record=lambda count, why: threads.record(progress.step, count, why)))
    resolved_values = {**resolved.to_dict(), "init_seed": init_seed(config),
                       "precision": parts.precision.name, "precision_why": parts.precision.why,
                       "memory_format": layout_name(parts.channels_last),
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
            f"training {config.model.variant} on {len(datasets.train)} images at "
            f"{config.data.input_size}x{config.data.input_size}, "
            f"{len(datasets.classes)} classes, {device.type}, {parts.precision.name} "
            f"({parts.precision.why}), {layout_name(parts.channels_last)}, "
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
        """The model returned carries the run's record, as its checkpoints do."""
        parts = self.parts
        model = parts.average.module if parts.average is not None else parts.model
        record = run_artifact(self.config, self.classes, self.last_metrics)
        model.artifact = dataclasses.replace(record, provenance=dataclasses.replace(
            record.provenance, averaged=parts.average is not None))
        return TrainResult(self.run_dir, reason, self.progress.epoch, self.best_top1,
                           self.last_metrics, model)

    def run(self) -> TrainResult:
        epochs = self.config.optim.epochs
        self.started = time.perf_counter() - (self.last_metrics or {}).get("elapsed_seconds", 0.0)
        while self.progress.epoch < epochs:
            lr = self.parts.optimizer.param_groups[0]["lr"]
            result = self.train_epoch()
            if result.interrupted:
                if self.progress.batch_in_epoch >= len(self.loaders.train):
                    # stopped on the epoch's last batch: the epoch is complete and recorded as
                    # one, so that a resume starts the next rather than logging an empty epoch
                    self.progress.epoch += 1
                    self.progress.batch_in_epoch = 0
                    self.end_of_epoch(lr, result)
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
            evaluated = parts.average.module if parts.average else parts.model
            self.loaders.bn_stats.set_epoch(self.progress.epoch)
            estimate_batch_norm(evaluated, self.loaders.bn_stats, parts,
                                self.config.optim.bn_stats_batches)
            val = validate(evaluated, self.loaders.val, parts)
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
            self.hooks.on_message(summary_line(self.last_metrics, epochs, result, val))
            # best.pt first: a kill between the two writes leaves best.pt at this epoch and
            # last.pt at the one before, which the resume redoes; never last.pt ahead of best.pt.
            if is_best:
                save_run_checkpoint(self.run_dir, rundir.BEST, model_state(state))
            save_run_checkpoint(self.run_dir, rundir.LAST, state)
        barrier(self.info)
