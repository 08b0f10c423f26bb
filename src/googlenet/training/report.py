"""What a run reports after each epoch: its record (a line of metrics.jsonl) and its summary
line for the user.
"""

from __future__ import annotations

from typing import Any

from googlenet.training.engine import EpochResult, Progress, ValidationResult
from googlenet.training.run_threads import RunThreads


def epoch_record(epoch: int, lr: float, train: EpochResult, val: ValidationResult | None,
                 progress: Progress, threads: RunThreads) -> dict[str, Any]:
    record: dict[str, Any] = {
        "epoch": epoch, "lr": lr, "train_loss": train.loss, "train_top1": train.top1,
        "val_loss": val.loss if val else None, "val_top1": val.top1 if val else None,
        "val_top5": val.top5 if val else None, "val_images": val.images if val else None,
        "images_per_second": train.images_per_second, "seconds": train.seconds,
        "step": progress.step, "bad_images": len(train.bad_images),
        "nonfinite_skipped": train.nonfinite_skipped, "threads": threads.threads,
        "val_bad_images": len(val.bad_images) if val else None,
    }
    changes = threads.drain()
    if changes:  # the weights depend on the thread count: a change is part of the record
        record["thread_changes"] = changes
    return record


def summary_line(record: dict[str, Any], epochs: int, train: EpochResult,
                 val: ValidationResult | None = None) -> str:
    line = (f"epoch {record['epoch']}/{epochs}  lr {record['lr']:.4g}  "
            f"train loss {record['train_loss']:.4f}")
    if record["val_top1"] is not None:
        line += (f"  val loss {record['val_loss']:.4f}  top-1 {100 * record['val_top1']:.2f}%  "
                 f"top-5 {100 * record['val_top5']:.2f}%")
    line += f"  {record['images_per_second']:.0f} img/s  {record['seconds']:.1f}s"
    if train.bad_images:
        line += f"  skipped {len(train.bad_images)} unreadable: " + "; ".join(train.bad_images[:5])
    if val is not None and val.bad_images:  # named, as evaluate names them
        line += (f"  validation skipped {len(val.bad_images)} unreadable: "
                 + "; ".join(val.bad_images[:5]))
    if train.nonfinite_skipped:
        line += f"  skipped {train.nonfinite_skipped} non-finite steps"
    return line
