"""A run directory's file names, in one place: what `googlenet train` and `googlenet detect
train` write into a run directory, and what the loaders of a run directory look for.

    runs/x/
      config.yaml       the resolved configuration (a recipe that reproduces the run)
      metrics.jsonl     one record per epoch
      curves.png        loss and accuracy against epochs
      tensorboard/      the same records for TensorBoard
      best.pt           the checkpoint of the best validation top-1 (averaged weights)
      last.pt           the checkpoint a resume continues from
      detection.json    a detection run's record (`googlenet detect train`)
      regions/          an R-CNN run's warped region crops
"""

from __future__ import annotations

from pathlib import Path

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CURVES = "curves.png"
TENSORBOARD = "tensorboard"
BEST = "best.pt"
LAST = "last.pt"
DETECTION_RECORD = "detection.json"
REGIONS = "regions"

CHECKPOINTS = (BEST, LAST)  # what a run directory is loaded from, in this order


def last_checkpoint(run_dir: str | Path) -> Path:
    return Path(run_dir) / LAST


def best_checkpoint(run_dir: str | Path) -> Path:
    return Path(run_dir) / BEST


def is_checkpoint_name(name: str) -> bool:
    """Whether `name` is the file name of a run's checkpoint (best.pt, last.pt)."""
    return name in CHECKPOINTS
