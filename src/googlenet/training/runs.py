"""A run directory: config.yaml, metrics.jsonl, TensorBoard events, a plot, checkpoints."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from googlenet.artifact import rundir
from googlenet.runtime.files import atomic_path, write_atomically


def default_run_dir(name: str, root: str | Path = "runs") -> Path:
    return Path(root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / rundir.METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class RunLog:
    """Everything a run writes besides checkpoints. Only rank 0 creates one."""

    def __init__(self, run_dir: Path, config_yaml: str, resumed: bool) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomically(self.dir / rundir.CONFIG, config_yaml.encode())
        if not resumed:
            (self.dir / rundir.METRICS).write_text("")
        from torch.utils.tensorboard import SummaryWriter  # slow import, only when logging

        self.tensorboard = SummaryWriter(log_dir=str(self.dir / rundir.TENSORBOARD))

    def log_epoch(self, record: dict[str, Any]) -> None:
        with open(self.dir / rundir.METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "epoch":
                self.tensorboard.add_scalar(key, value, record["epoch"])
        self.tensorboard.flush()
        self.plot()

    def drop_epochs_after(self, epoch: int) -> None:
        """On resume: forget epochs logged after the checkpoint being resumed."""
        kept = [r for r in read_metrics(self.dir) if r["epoch"] <= epoch]
        write_atomically(self.dir / rundir.METRICS, "".join(json.dumps(r) + "\n" for r in kept).encode())

    def plot(self) -> None:
        plot_curves(read_metrics(self.dir), self.dir / rundir.CURVES)

    def close(self) -> None:
        self.tensorboard.close()


def plot_curves(records: list[dict[str, Any]], path: Path) -> None:
    """Loss and accuracy against epochs, written atomically so a viewer never sees half a PNG."""
    if not records:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        loss_ax.plot(epochs, [r.get(key) for r in records], marker="o", label=label)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    for key, label in (("val_top1", "validation top-1"), ("val_top5", "validation top-5"),
                       ("train_top1", "train top-1")):
        acc_ax.plot(epochs, [100 * r[key] if r.get(key) is not None else None for r in records],
                    marker="o", label=label)
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
