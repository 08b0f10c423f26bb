"""What a run and the proposal cache take on disk: the sizes the README states.

    python benchmarks/disk_use.py      # writes benchmarks/results/disk_use.md

Checkpoints: last.pt and best.pt as a run writes them (training.run_state) after one
optimizer step, for the recipes people start from; their size depends on the network, the
classes and the optimizer's state, not on the weights' values. Proposals: Selective Search on
the shared raccoon test split (40 photographs) in each setting, one cache file per image
(needs opencv-contrib-python and ../shared/data).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import torch
from report import write_report

from googlenet.runtime.distributed import DistInfo
from googlenet.training.assembly import build_parts, make_model
from googlenet.training.checkpoint import capture_rng, save_checkpoint
from googlenet.training.config import load_recipe, resolve_optim, with_overrides
from googlenet.training.engine import Progress, optimizer_step, training_loss
from googlenet.training.run_state import checkpoint_state, model_state

RESULTS = Path(__file__).parent / "results" / "disk_use.md"
RACCOON = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "raccoon"
RUNS = (("photos", "bn", 5), ("fast", "bn", 1000), ("digits", "paper", 10), ("paper", "paper", 1000))


def checkpoint_sizes(folder: Path, recipe: str, variant: str, classes: int) -> tuple[str, float, float]:
    config = with_overrides(load_recipe(recipe), {"variant": variant, "workers": "0"})
    cpu = torch.device("cpu")
    model = make_model(config, classes, cpu)
    parts = build_parts(model, config, cpu, DistInfo(), 10, resolve_optim(config.optim, 1))
    size = config.data.input_size
    loss, _ = training_loss(parts, torch.randn(2, 3, size, size), torch.tensor([0, 1]))
    optimizer_step(parts, loss)  # the optimizer's state exists after its first step
    state = checkpoint_state(parts, Progress(), config, [str(i) for i in range(classes)], 0.5, {},
                             [capture_rng()], 1)
    save_checkpoint(folder / "last.pt", state)
    save_checkpoint(folder / "best.pt", model_state(state))
    what = (f"`{recipe}`, {variant}, {classes:,} classes, auxiliary heads "
            f"{'on' if config.model.aux_logits else 'off'}, averaging {config.optim.averaging}, "
            f"{config.optim.optimizer}")
    mb = 1e6
    return what, (folder / "best.pt").stat().st_size / mb, (folder / "last.pt").stat().st_size / mb


def proposal_sizes(folder: Path) -> list[str]:
    from googlenet.detection.data import load_detection
    from googlenet.detection.proposals import SETTINGS, ProposalCache, measure_recall

    data = load_detection(RACCOON, "test")
    rows = []
    for setting in SETTINGS:
        cache = folder / setting
        measure_recall(data.samples, setting, 500, ProposalCache(cache))
        files = list(cache.iterdir())
        rows.append(f"| {setting} | {len(files)} | "
                    f"{sum(f.stat().st_size for f in files) / len(files) / 1024:.1f} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    lines = ["# Disk use: a run's checkpoints and the proposal cache", "",
             "Command: `python benchmarks/disk_use.py`. Machine: "
             f"{platform.processor() or platform.machine()}; torch {torch.__version__}.", "",
             "| run | best.pt MB | last.pt MB | best / last |", "| --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        for recipe, variant, classes in RUNS:
            what, best, last = checkpoint_sizes(Path(tmp), recipe, variant, classes)
            lines.append(f"| {what} | {best:.1f} | {last:.1f} | {best / last:.2f} |")
        if RACCOON.is_dir():
            lines += ["", "Selective Search's cache (`~/.cache/googlenet/proposals`), raccoon test split:",
                      "", "| setting | files | KB per image |", "| --- | --- | --- |",
                      *proposal_sizes(Path(tmp))]
        else:
            print(f"skipping the proposal cache: no {RACCOON}", file=sys.stderr)
    write_report(args.output, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
