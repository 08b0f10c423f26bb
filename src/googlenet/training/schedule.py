"""Learning-rate schedules as a factor of the base rate, stepped once per optimizer step."""

from __future__ import annotations

import math
from functools import partial

import torch

from googlenet.training.config import OptimConfig, ResolvedOptim


def lr_factor(step: int, *, steps_per_epoch: int, epochs: int, schedule: str, step_epochs: float,
              gamma: float, warmup_epochs: float, min_lr_ratio: float, power: float = 1.0,
              warmup_start: float = 0.0) -> float:
    """The factor of the effective rate at optimizer step `step` (counted from 0).

    A warm-up rises linearly from `warmup_start` to 1 over `warmup_epochs`; it multiplies
    the step and poly schedules and precedes cosine and onecycle.
    """
    epoch = step / steps_per_epoch
    warmup = warmup_epochs > 0 and epoch < warmup_epochs
    warmup_factor = warmup_start + (1 - warmup_start) * epoch / warmup_epochs if warmup else 1.0
    if schedule == "step":
        # Sec. 6: "decreasing the learning rate by 4% every 8 epochs" (gamma 0.96, Caffe's step policy)
        return warmup_factor * gamma ** math.floor(epoch / step_epochs)
    if schedule == "poly":
        # Caffe's poly policy (BVLC's quick_solver.prototxt): base_lr * (1 - iter / max_iter) ^ power,
        # iter and max_iter in steps of the run's global batch, max_iter = epochs x steps_per_epoch
        return warmup_factor * max(0.0, 1 - step / (epochs * steps_per_epoch)) ** power
    if warmup:
        return max(warmup_factor, 1e-3)
    progress = min(1.0, (epoch - warmup_epochs) / max(epochs - warmup_epochs, 1e-9))
    if schedule == "cosine":
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    assert schedule == "onecycle"  # linear up (the warm-up), then linear down
    return min_lr_ratio + (1 - min_lr_ratio) * (1 - progress)


def build_scheduler(optimizer: torch.optim.Optimizer, optim: OptimConfig, steps_per_epoch: int,
                    resolved: ResolvedOptim | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    """`resolved`: the run's warm-up (config.resolve_optim); default the config's, from 0."""
    warmup, start = (optim.warmup_epochs, 0.0) if resolved is None else (
        resolved.warmup_epochs, resolved.warmup_start)
    factor = partial(lr_factor, steps_per_epoch=steps_per_epoch, epochs=optim.epochs,
                     schedule=optim.schedule, step_epochs=optim.step_epochs, gamma=optim.gamma,
                     warmup_epochs=warmup, min_lr_ratio=optim.min_lr_ratio, power=optim.power,
                     warmup_start=start)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def warmup_cosine(step: int, *, total_steps: int, warmup_steps: int, start_factor: float = 1e-3,
                  progress: float | None = None) -> float:
    """torchvision's detection reference warm-up (linear from `start_factor` to 1 over
    `warmup_steps`), then a cosine to zero whose progress is step / total_steps counted from
    step 0 (the detection loop's schedule). `progress` in [0, 1], when given, replaces that
    fraction (detection's wall-clock budget: the share of the time spent)."""
    if step < warmup_steps:
        return start_factor + (1 - start_factor) * step / warmup_steps
    if progress is None:
        progress = step / max(total_steps, 1)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

