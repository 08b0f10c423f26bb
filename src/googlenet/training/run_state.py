"""A run's state in its checkpoints: what one holds (`checkpoint_state`, with the run's
artifact record), written only while the weights are finite, and read back by a resume
(the checkpoint, the configuration with overrides, the parts, every rank's RNG).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from googlenet.artifact import rundir, schema
from googlenet.artifact.files import checkpoint_weights
from googlenet.artifact.record import Artifact, Provenance
from googlenet.data.config import preprocessing
from googlenet.errors import ConfigError, ModelSourceError, NotFound, TrainingStopped
from googlenet.runtime.distributed import DistInfo
from googlenet.runtime.files import DirectoryLock
from googlenet.training.callbacks import Hooks
from googlenet.training.checkpoint import all_finite, restore_rng, save_checkpoint
from googlenet.training.config import TrainConfig, config_from_dict, config_to_dict, with_overrides
from googlenet.training.engine import Progress, TrainingParts


def run_artifact(config: TrainConfig, classes: Sequence[str], metrics: dict[str, Any] | None
                 ) -> Artifact:
    """The run's record, without weights: the one its checkpoints carry and its models hold
    (`model.artifact`): the data's classes and preprocessing, the configuration, the metrics."""
    return Artifact(config.model.variant, tuple(classes), preprocessing(config.data),
                    aux_logits=config.model.aux_logits, width=config.model.width,
                    provenance=Provenance(config=config_to_dict(config), metrics=metrics))


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
        "artifact": schema.to_dict(run_artifact(config, classes, metrics)),
        "best_top1": best_top1,
        "metrics": metrics,
    }


RECORD_KEYS = ("progress", "config", "classes", "artifact", "best_top1", "metrics")


def model_state(state: dict[str, Any]) -> dict[str, Any]:
    """best.pt: the weights a run is used with (Sec. 6: the averaged ones, when it averages)
    and its record, about a third of last.pt, which alone holds what a resume needs (the
    model being trained, the optimizer's state, the RNG)."""
    weights, averaged = checkpoint_weights(state)
    return {"model": weights, "averaged": averaged, **{key: state[key] for key in RECORD_KEYS}}


def is_resumable(state: dict[str, Any]) -> bool:
    return "optimizer" in state


def save_run_checkpoint(run_dir: Path, name: str, state: dict[str, Any]) -> None:
    """Never overwrite a good checkpoint with non-finite weights."""
    ema = state.get("ema")
    if not all_finite(state["model"]) or (ema and not all_finite(ema["module"])):
        raise TrainingStopped(f"the weights are no longer finite; {name} was not overwritten")
    save_checkpoint(run_dir / name, state)


def checkpoint_to_resume(run: str | Path) -> Path:
    """A run directory's last.pt, or the checkpoint file given."""
    path = Path(run)
    checkpoint = rundir.last_checkpoint(path) if path.is_dir() else path
    if not checkpoint.exists():
        if (path / DirectoryLock.NAME).exists():  # a run before its first checkpoint: RunInUse
            DirectoryLock(path).acquire().release()  # names its PID
        raise NotFound(f"nothing to resume: {checkpoint} does not exist")
    return checkpoint


def refuse_model_only(state: dict[str, Any], checkpoint: Path) -> None:
    """A run's best.pt is for using the model; resuming takes last.pt."""
    if not is_resumable(state):
        raise ModelSourceError(f"{checkpoint} holds the model only (the weights of the run's best "
                               f"epoch); a run resumes from its {rundir.LAST}: --resume "
                               f"{checkpoint.parent}")


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


def restore_parts(parts: TrainingParts, state: dict[str, Any]) -> Progress:
    parts.model.load_state_dict(state["model"])
    if parts.average is not None and state.get("ema"):
        parts.average.load_state_dict(state["ema"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    parts.scaler.load_state_dict(state["scaler"])
    schedule_now(parts.scheduler)
    return Progress(**state["progress"])


def schedule_now(scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Each group's lr as the schedule gives it at the restored step: the saved lr when nothing
    changed (the same computation LambdaLR.step makes), and a schedule stretched by a resume with
    more epochs in effect from its first step, never one step at the old schedule's last lr
    (0 at the end of one-cycle)."""
    groups = scheduler.optimizer.param_groups
    for group, base, factor in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * factor(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in groups]  # what get_last_lr() reports


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
