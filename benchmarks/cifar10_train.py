"""CIFAR-10 at 32x32: our `fast` recipe against a plain torchvision-style loop, same machine, same budget.

    python benchmarks/cifar10_train.py --minutes 30 --epochs 12 --baseline-epochs 12

Ours runs as the real command (`googlenet train --recipe fast ...`); the baseline is
torchvision's `googlenet` trained with a loop in the style of torchvision's reference
script: ImageFolder over the JPEG files, DataLoader workers, SGD with momentum and a
cosine schedule, fp32, NCHW. Both get the same batch size and the same wall-clock budget
(each is stopped at the deadline); the curves count time from the start of each process,
data loading included. Writes curves.md, curves.json and curves.png to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "cifar10"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def run_ours(out: Path, minutes: float, epochs: int, batch: int, variant: str) -> list[dict]:
    command = [sys.executable, "-m", "googlenet", "train", "--recipe", "fast",
               "--train-dir", str(DATA / "train.tar"), "--val-dir", str(DATA / "test.tar"),
               "--variant", variant, "--epochs", str(epochs), "--batch-size", str(batch),
               "--output-dir", str(out / "ours"), "--quiet"]
    print("ours:", " ".join(command), flush=True)
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    curve, setup = [], None
    deadline = start + 60 * minutes
    assert process.stdout is not None
    for line in process.stdout:
        print("  ", line.rstrip(), flush=True)
        if setup is None and line.startswith("training "):
            setup = time.perf_counter() - start  # data decoded, model built
        if line.startswith("epoch "):
            record = json.loads((out / "ours" / "metrics.jsonl").read_text().splitlines()[-1])
            curve.append({"epoch": record["epoch"], "top1": record["val_top1"],
                          "minutes": (setup + record["elapsed_seconds"]) / 60})
        if time.perf_counter() > deadline:
            process.terminate()
    process.wait()
    return curve


def extracted(archive: Path, cache: Path) -> Path:
    """The plain baseline reads a JPEG folder: unpack the archive once, outside the repository."""
    target = cache / archive.stem
    if not (target / ".done").exists():
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        (target / ".done").touch()
    roots = [p for p in target.rglob("*") if p.is_dir() and (p / "airplane").is_dir()]
    return roots[0]


def run_baseline(minutes: float, epochs: int, batch: int, lr: float, cache: Path) -> list[dict]:
    import torch
    import torchvision
    from torchvision import transforms as T

    start = time.perf_counter()
    torch.manual_seed(0)
    normalize = T.Normalize(MEAN, STD)
    train_set = torchvision.datasets.ImageFolder(
        extracted(DATA / "train.tar", cache),
        T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), normalize]))
    test_set = torchvision.datasets.ImageFolder(extracted(DATA / "test.tar", cache),
                                                T.Compose([T.ToTensor(), normalize]))
    train_loader = torch.utils.data.DataLoader(train_set, batch, shuffle=True, num_workers=2,
                                               drop_last=True, persistent_workers=True)
    test_loader = torch.utils.data.DataLoader(test_set, 256, num_workers=2)
    model = torchvision.models.googlenet(num_classes=10, aux_logits=False, init_weights=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    criterion = torch.nn.CrossEntropyLoss()
    deadline, curve = start + 60 * minutes, []
    for epoch in range(epochs):
        model.train()
        for images, labels in train_loader:
            loss = criterion(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if time.perf_counter() > deadline:
                return curve
        scheduler.step()
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for images, labels in test_loader:
                correct += (model(images).argmax(1) == labels).sum().item()
                total += len(labels)
        curve.append({"epoch": epoch + 1, "top1": correct / total,
                      "minutes": (time.perf_counter() - start) / 60})
        print(f"   baseline epoch {epoch + 1}: top-1 {100 * correct / total:.2f}% "
              f"at {curve[-1]['minutes']:.1f} min", flush=True)
    return curve


def first_time_at(curve: list[dict], accuracy: float) -> float | None:
    return next((p["minutes"] for p in curve if p["top1"] >= accuracy), None)


def report(ours: list[dict], baseline: list[dict], out: Path, header: str) -> str:
    lines = [header, "", "| run | epoch | minutes | test top-1 |", "| --- | --- | --- | --- |"]
    for name, curve in (("ours", ours), ("baseline", baseline)):
        lines += [f"| {name} | {p['epoch']} | {p['minutes']:.1f} | {100 * p['top1']:.2f}% |"
                  for p in curve]
    lines.append("")
    for target in (0.80, 0.85):
        at = first_time_at(ours, target)
        lines.append(f"- ours reaches {target:.0%}: "
                     + (f"at {at:.1f} min" if at is not None else "not within the budget"))
    if baseline:
        final = baseline[-1]
        at = first_time_at(ours, final["top1"])
        lines.append(f"- baseline final: {100 * final['top1']:.2f}% at {final['minutes']:.1f} min; "
                     + (f"ours reaches it at {at:.1f} min ({at / final['minutes']:.2f}x the "
                        "baseline's time)" if at is not None else "ours does not reach it"))
    return "\n".join(lines)


def plot(ours: list[dict], baseline: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in (("ours (fast recipe)", ours), ("torchvision googlenet, plain loop", baseline)):
        ax.plot([p["minutes"] for p in curve], [100 * p["top1"] for p in curve], marker="o", label=name)
    ax.set(xlabel="wall-clock minutes (2-core CPU)", ylabel="CIFAR-10 test top-1 (%)",
           title="CIFAR-10 at 32x32: accuracy against time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget of each run")
    parser.add_argument("--epochs", type=int, default=10, help="ours: epochs of the one-cycle schedule")
    parser.add_argument("--baseline-epochs", type=int, default=10, help="baseline: cosine length")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--baseline-lr", type=float, default=0.02,
                        help="the reference script's 0.1 (for batch 256) diverged early here, "
                             "as 0.05 and 0.1 did for ours; both use 0.02")
    parser.add_argument("--variant", default="bn", choices=["bn", "paper"])
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--out", type=Path,
                        default=REPO / "runs" / f"bench-cifar10-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "googlenet")
    args = parser.parse_args()
    if not (DATA / "train.tar").exists():
        print(f"skipped: {DATA} is missing (see ../shared/data/README.md)")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    ours = run_ours(args.out, args.minutes, args.epochs, args.batch_size, args.variant)
    print("ours:", ours, flush=True)
    baseline = [] if args.skip_baseline else run_baseline(args.minutes, args.baseline_epochs,
                                                          args.batch_size, args.baseline_lr,
                                                          args.cache)
    header = (f"CIFAR-10, 32x32, batch {args.batch_size}, budget {args.minutes:g} min per run, "
              f"{os.cpu_count()} CPU cores; ours: variant {args.variant}, recipe fast, "
              f"{args.epochs} epochs; baseline: torchvision googlenet, {args.baseline_epochs} epochs, "
              f"lr {args.baseline_lr}.\n"
              f"Command: python benchmarks/cifar10_train.py {' '.join(sys.argv[1:])}")
    text = report(ours, baseline, args.out, header)
    (args.out / "curves.md").write_text(text + "\n")
    (args.out / "curves.json").write_text(json.dumps({"ours": ours, "baseline": baseline}, indent=2))
    plot(ours, baseline, args.out / "curves.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
