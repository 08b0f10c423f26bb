"""Training torchvision detection models (Faster R-CNN on GoogLeNet, and the peer), in the
manner of torchvision's detection reference script: SGD with momentum 0.9 and weight decay
1e-4, a linear warm-up, horizontal flips; here a cosine decay, gradient clipping and
metrics.jsonl. The pieces are the training package's (one engine): its parameter groups, its
schedule (training.schedule.warmup_cosine), its checkpoints (atomic, free space checked,
weights_only; of kind "detector") and RNG capture. Only the epoch over detection images is
this module's own.

A resumed run ends bit-identical to an uninterrupted one with the same thread count: flips
are a function of (seed, epoch, index), the order of (seed, epoch), the batches done in a
stopped epoch are skipped on resume, and torch's RNG (the RPN's and RoI heads' sampling) and
the schedule's step are restored. The exception is a wall-clock budget (`budget_seconds`):
the cosine then runs over the time spent, so that the rate reaches zero at the deadline
whatever the speed; its rates depend on the clock, so such a run is not reproducible.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor, resize

from googlenet.artifact import rundir
from googlenet.artifact.files import DETECTOR
from googlenet.data.images import BadImage
from googlenet.detection.data import DetectionData
from googlenet.detection.regions import load_image
from googlenet.errors import ModelSourceError, TrainingStopped
from googlenet.runtime.progress import OnProgress, no_progress
from googlenet.training.checkpoint import (
    all_finite,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from googlenet.training.finetune import parameter_groups
from googlenet.training.schedule import warmup_cosine

READING = "reading images"  # train_detector's first stage (runtime.progress), then one per epoch


def epoch_stage(epoch: int, epochs: int) -> str:
    """Epoch `epoch` (0-based) as a stage of the progress: "epoch 3/20"."""
    return f"epoch {epoch + 1}/{epochs}"


@dataclass(frozen=True)
class LoopConfig:
    epochs: int = 20
    batch_size: int = 4
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float = 10.0
    image_size: int = 320  # shorter side the images are held at (the model resizes too)
    seed: int = 0
    budget_seconds: float = 0.0  # 0: none; else stop then, the cosine over this time (not reproducible)
    max_bad_images: int = 50


@dataclass
class LoopState:
    epoch: int = 0
    step: int = 0
    batch: int = 0  # batches done in `epoch` (a run stopped inside an epoch resumes after them)
    elapsed: float = 0.0  # training seconds so far (across resumes)
    threads: int = 1  # torch's intra-op threads (results depend on them)
    history: list[dict[str, Any]] = field(default_factory=list)


class TrainImages(Dataset):
    """The training images, decoded once and held at `size` on the shorter side (the longer at
    most twice that); targets as torchvision's detection models take them (labels from 1,
    0 being background). Unreadable images are left out and named in `skipped`. `on_progress`:
    the images read (stage READING)."""

    def __init__(self, data: DetectionData, size: int, seed: int,
                 on_progress: OnProgress = no_progress) -> None:
        self.images: list[Tensor] = []
        self.targets: list[dict[str, Tensor]] = []
        self.skipped: list[str] = []
        self.seed, self.epoch = seed, 0
        for index, sample in enumerate(data.samples):
            on_progress(READING, "img", index, len(data.samples))
            try:
                _, image = load_image(sample.image)
            except (BadImage, OSError) as error:
                self.skipped.append(f"{sample.image}: {error}")
                continue
            scale = min(size / min(image.size), 2 * size / max(image.size))
            pixels = pil_to_tensor(image)
            pixels = resize(pixels, [max(1, round(image.height * scale)), max(1, round(image.width * scale))],
                            antialias=True)
            keep = ~sample.ignore
            boxes = torch.from_numpy(sample.boxes[keep]).float() * torch.tensor(
                [pixels.shape[2] / sample.width, pixels.shape[1] / sample.height] * 2)
            self.images.append(pixels)
            self.targets.append({"boxes": boxes.reshape(-1, 4),
                                 "labels": torch.from_numpy(sample.labels[keep]) + 1})

        on_progress(READING, "img", len(data.samples), len(data.samples))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        image, target = self.images[index].float().div(255), dict(self.targets[index])
        flip = np.random.default_rng((self.seed, self.epoch, index)).random() < 0.5
        if flip:  # a function of (seed, epoch, index): a resumed epoch sees the same flips
            image = image.flip(-1)
            boxes = target["boxes"].clone()
            boxes[:, [0, 2]] = image.shape[-1] - target["boxes"][:, [2, 0]]
            target["boxes"] = boxes
        return image, target


def collate(batch: list) -> tuple[list, list]:
    return [b[0] for b in batch], [b[1] for b in batch]


def epoch_batches(images: TrainImages, epoch: int, batch_size: int, seed: int, skip: int
                  ) -> Iterator[tuple[list[Tensor], list[dict[str, Tensor]]]]:
    """The epoch's batches in its order (a function of seed and epoch), the first `skip` left
    out. No DataLoader: its iterator draws a seed from torch's RNG, which a resume would then
    draw at another point of the stream."""
    images.epoch = epoch
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    for start in range(skip * batch_size, len(order), batch_size):
        yield collate([images[i] for i in order[start:start + batch_size]])


def build_schedule(optimizer: torch.optim.Optimizer, config: LoopConfig, total_steps: int,
                   clock: Callable[[], float]) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up and cosine by step (training.schedule.warmup_cosine); with a budget, the cosine
    runs over the time `clock()` says has been spent."""
    by_step = partial(warmup_cosine, total_steps=total_steps, warmup_steps=config.warmup_steps)
    if config.budget_seconds <= 0:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, by_step)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: by_step(step, progress=clock() / config.budget_seconds))


def build_optimizer(model: nn.Module, config: LoopConfig) -> torch.optim.SGD:
    """SGD over training.finetune's groups: no weight decay on biases and batch-norm parameters."""
    return torch.optim.SGD(parameter_groups(model, config.lr, config.weight_decay), lr=config.lr,
                           momentum=config.momentum)


def checkpoint_state(model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, state: LoopState,
                     extra: dict[str, Any]) -> dict[str, Any]:
    progress = {"epoch": state.epoch, "step": state.step, "batch": state.batch, "elapsed": state.elapsed,
                "threads": state.threads}
    return {DETECTOR: model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "progress": progress,
            "history": json.loads(json.dumps(state.history)), "rng": capture_rng(), **extra}


def resume_into(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LRScheduler) -> LoopState:
    saved = load_checkpoint(path, DETECTOR)
    if "scheduler" not in saved:
        raise ModelSourceError(f"{path} was written by an older googlenet: its detector can be used "
                               "(detect predict, detect evaluate) but its training cannot be resumed")
    model.load_state_dict(saved[DETECTOR])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    restore_rng(saved["rng"])
    p = saved["progress"]
    return LoopState(p["epoch"], p["step"], p["batch"], p["elapsed"], p["threads"],
                     list(saved.get("history") or []))


def training_images(data: DetectionData, config: LoopConfig, on_message: Callable[[str], None],
                    on_progress: OnProgress = no_progress) -> TrainImages:
    images = TrainImages(data, config.image_size, config.seed, on_progress)
    if len(images) == 0:
        raise TrainingStopped(f"no readable training images in {data.source}")
    if len(images.skipped) > config.max_bad_images:
        raise TrainingStopped(f"{len(images.skipped)} unreadable images; first: {images.skipped[0]}")
    for line in images.skipped:
        on_message(f"skipped unreadable image {line}")
    return images


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch_images: list[Tensor],
               targets: list[dict[str, Tensor]], grad_clip: float) -> dict[str, Tensor] | None:
    """One SGD step; the losses, or None when the loss was not finite (no step taken)."""
    device = next(model.parameters()).device
    batch_images = [image.to(device) for image in batch_images]
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    losses = model(batch_images, targets)
    loss = sum(losses.values())
    optimizer.zero_grad(set_to_none=True)
    if not torch.isfinite(loss):
        return None
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return {"loss": loss.detach(), **{k: v.detach() for k, v in losses.items()}}


@dataclass
class EpochSums:
    sums: dict[str, float] = field(default_factory=dict)
    seen: int = 0

    def add(self, losses: dict[str, Tensor], images: int) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0.0) + value.item() * images
        self.seen += images


def train_detector(model: nn.Module, data: DetectionData, run_dir: Path, config: LoopConfig,
                   extra: dict[str, Any], resume: bool = False,
                   on_message: Callable[[str], None] = lambda m: None,
                   should_stop: Callable[[], bool] = lambda: False, max_steps: int = 0,
                   threads: int = 1, on_progress: OnProgress = no_progress) -> LoopState:
    """Train `model` (a torchvision detection model) on `data` with `threads` intra-op threads
    (set by the caller; recorded); last.pt after every epoch and at a stop. `extra`: what else
    the checkpoint carries (how to rebuild the model). `on_progress`: the images read (stage
    READING), then each epoch's batches (stage `epoch_stage`)."""
    torch.manual_seed(config.seed)
    images = training_images(data, config, on_message, on_progress)
    optimizer = build_optimizer(model, config)
    batches = math.ceil(len(images) / config.batch_size)
    clock = Clock()
    scheduler = build_schedule(optimizer, config, batches * config.epochs, clock)
    last = rundir.last_checkpoint(run_dir)
    state = resume_into(last, model, optimizer, scheduler) if resume else LoopState()
    state.threads = threads
    clock.start(state.elapsed)
    halt = False
    while state.epoch < config.epochs and not halt:
        model.train()
        sums, epoch_start = EpochSums(), time.perf_counter()
        stage = epoch_stage(state.epoch, config.epochs)
        on_progress(stage, "batch", state.batch, batches)
        for batch_images, targets in epoch_batches(images, state.epoch, config.batch_size, config.seed,
                                                   state.batch):
            losses = train_step(model, optimizer, batch_images, targets, config.grad_clip)
            if losses is None:
                on_message(f"skipped a non-finite loss at step {state.step}")
            else:
                sums.add(losses, len(batch_images))
            scheduler.step()
            state.step, state.batch, state.elapsed = state.step + 1, state.batch + 1, clock()
            on_progress(stage, "batch", state.batch, batches)
            over_budget = config.budget_seconds > 0 and state.elapsed >= config.budget_seconds
            halt = should_stop() or over_budget or bool(max_steps and state.step >= max_steps)
            if halt:
                break
        # a stop after an epoch's last batch ends that epoch: a resume starts the next one
        end_epoch(model, optimizer, scheduler, state, sums, time.perf_counter() - epoch_start,
                  state.batch >= batches, images, config, run_dir, extra, on_message)
    return state


class Clock:
    """Training seconds so far, across resumes (the budget's measure)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def start(self, elapsed: float) -> None:
        self.started = time.perf_counter() - elapsed

    def __call__(self) -> float:
        return time.perf_counter() - self.started


def end_epoch(model: nn.Module, optimizer: torch.optim.Optimizer,
              scheduler: torch.optim.lr_scheduler.LRScheduler, state: LoopState, sums: EpochSums,
              seconds: float, complete: bool, images: TrainImages, config: LoopConfig, run_dir: Path,
              extra: dict[str, Any], on_message: Callable[[str], None]) -> None:
    """The epoch's record in the history and metrics.jsonl, and last.pt."""
    record = {"epoch": state.epoch + 1, "step": state.step, "lr": optimizer.param_groups[0]["lr"],
              **{k: v / max(sums.seen, 1) for k, v in sums.sums.items()}, "images": sums.seen,
              "images_per_second": sums.seen / seconds if seconds > 0 else 0.0, "seconds": seconds,
              "elapsed_seconds": state.elapsed, "bad_images": len(images.skipped),
              "threads": state.threads, "complete": complete}
    if complete:
        state.epoch, state.batch = state.epoch + 1, 0
    state.history.append(record)
    on_message(f"epoch {record['epoch']}/{config.epochs}  loss {record.get('loss', float('nan')):.4f}  "
               f"{record['images_per_second']:.1f} img/s  {seconds:.1f}s"
               + ("" if complete else "  (stopped)"))
    if not all_finite(model.state_dict()):
        raise TrainingStopped(f"the weights are no longer finite; {rundir.LAST} was not overwritten")
    save_checkpoint(rundir.last_checkpoint(run_dir),
                    checkpoint_state(model, optimizer, scheduler, state, extra), kind=DETECTOR)
    with open(run_dir / rundir.METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")

