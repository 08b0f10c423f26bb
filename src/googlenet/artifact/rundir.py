"""A run directory's file names, in one place: what `googlenet train` and `googlenet detect
train` write into a run directory, what the loaders of a run directory look for, and where a
command puts what it makes of a model when given no output (its run, else outputs/).

    runs/x/
      config.yaml       the resolved configuration (a recipe that reproduces the run)
      metrics.jsonl     one record per epoch
      curves.png        loss and accuracy against epochs
      tensorboard/      the same records for TensorBoard
      best.pt           the model of the best validation top-1: its averaged weights and
                        record, without what only a resume needs (training.run_state.model_state)
      last.pt           the checkpoint a resume continues from (everything)
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


def is_checkpoint_name(name: str) -> bool:
    """Whether `name` is the file name of a run's checkpoint (best.pt, last.pt)."""
    return name in CHECKPOINTS


OUTPUTS = Path("outputs")  # what commands make of published weights, loose files or no model


def output_folder(source: str | Path | None) -> Path:
    """Where a command puts what it makes of a model when given no output: the model's run
    directory (a run, or its best.pt / last.pt), else outputs/ (published weights, loose files,
    a model in memory, no model at all); never loose in the working directory."""
    if source is not None and not str(source).startswith("<"):
        path = Path(source)
        if path.is_dir():
            return path
        if path.is_file() and is_checkpoint_name(path.name):
            return path.parent
    return OUTPUTS


def default_output(source: str | Path | None, name: str) -> Path:
    """`name` in `output_folder(source)`, the folder made."""
    folder = output_folder(source)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
