"""Training torchvision detection models (Faster R-CNN on GoogLeNet, and the peer), in the
manner of torchvision's detection reference script: SGD with momentum 0.9 and weight decay
1e-4, a linear warm-up, horizontal flips; here a cosine decay (over the epochs, or over the
wall-clock budget when one is set), gradient clipping, and this project's checkpoints (written
atomically, loaded with weights_only=True), resume and metrics.jsonl.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.functional import pil_to_tensor, resize

from googlenet.data.images import BadImage
from googlenet.detection.data import DetectionData
from googlenet.detection.regions import load_image
from googlenet.errors import TrainingStopped
from googlenet.training.checkpoint import (
    all_finite,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)


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
    budget_seconds: float = 0.0  # 0: none; else stop then, the cosine decay over this time
    max_bad_images: int = 50


@dataclass
class LoopState:
    epoch: int = 0
    step: int = 0
    elapsed: float = 0.0  # training seconds so far (across resumes)
    history: list[dict[str, Any]] = field(default_factory=list)


class TrainImages(Dataset):
    """The training images, decoded once and held at `size` on the shorter side (the longer at
    most twice that); targets as torchvision's detection models take them (labels from 1,
    0 being background). Unreadable images are left out and named in `skipped`."""

    def __init__(self, data: DetectionData, size: int, seed: int) -> None:
        self.images: list[Tensor] = []
        self.targets: list[dict[str, Tensor]] = []
        self.skipped: list[str] = []
        self.seed, self.epoch = seed, 0
        for sample in data.samples:
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


def lr_factor(step: int, total_steps: int, warmup: int, elapsed: float, budget: float) -> float:
    """Linear warm-up, then a cosine to zero over the steps, or over the wall-clock budget."""
    if step < warmup:
        return 0.001 + (1 - 0.001) * step / warmup
    progress = min(elapsed / budget, 1.0) if budget > 0 else min(step / max(total_steps, 1), 1.0)
    return 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, config: LoopConfig) -> torch.optim.SGD:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return torch.optim.SGD([{"params": decay, "weight_decay": config.weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}], lr=config.lr,
                           momentum=config.momentum)


def checkpoint_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: LoopState,
                     extra: dict[str, Any]) -> dict[str, Any]:
    return {"detector": model.state_dict(), "optimizer": optimizer.state_dict(),
            "progress": {"epoch": state.epoch, "step": state.step, "elapsed": state.elapsed},
            "history": json.loads(json.dumps(state.history)), "rng": capture_rng(), **extra}


def resume_into(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> LoopState:
    saved = load_checkpoint(path)
    model.load_state_dict(saved["detector"])
    optimizer.load_state_dict(saved["optimizer"])
    restore_rng(saved["rng"])
    p = saved["progress"]
    return LoopState(p["epoch"], p["step"], p["elapsed"], list(saved.get("history") or []))


def train_detector(model: nn.Module, data: DetectionData, run_dir: Path, config: LoopConfig,
                   extra: dict[str, Any], resume: bool = False,
                   on_message: Callable[[str], None] = lambda m: None,
                   should_stop: Callable[[], bool] = lambda: False, max_steps: int = 0) -> LoopState:
    """Train `model` (a torchvision detection model) on `data`; last.pt after every epoch and at
    a stop. `extra`: what else the checkpoint carries (how to rebuild the model)."""
    torch.manual_seed(config.seed)
    images = TrainImages(data, config.image_size, config.seed)
    if len(images) == 0:
        raise TrainingStopped(f"no readable training images in {data.source}")
    if len(images.skipped) > config.max_bad_images:
        raise TrainingStopped(f"{len(images.skipped)} unreadable images; first: {images.skipped[0]}")
    for line in images.skipped:
        on_message(f"skipped unreadable image {line}")
    optimizer = build_optimizer(model, config)
    device = next(model.parameters()).device
    state = resume_into(run_dir / "last.pt", model, optimizer) if resume else LoopState()
    batches = math.ceil(len(images) / config.batch_size)
    total = batches * config.epochs
    started = time.perf_counter() - state.elapsed
    metrics = run_dir / "metrics.jsonl"
    stopped = False
    while state.epoch < config.epochs and not stopped:
        images.epoch = state.epoch
        generator = torch.Generator().manual_seed(config.seed + state.epoch)
        order = torch.randperm(len(images), generator=generator)
        loader = DataLoader(torch.utils.data.Subset(images, order.tolist()), batch_size=config.batch_size,
                            collate_fn=collate)
        model.train()
        sums: dict[str, float] = {}
        seen, epoch_start = 0, time.perf_counter()
        for batch_images, targets in loader:
            batch_images = [image.to(device) for image in batch_images]
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            for group in optimizer.param_groups:
                group["lr"] = config.lr * lr_factor(state.step, total, config.warmup_steps,
                                                    time.perf_counter() - started, config.budget_seconds)
            losses = model(batch_images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                optimizer.zero_grad(set_to_none=True)
                on_message(f"skipped a non-finite loss at step {state.step}")
            else:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + value.item() * len(batch_images)
                sums["loss"] = sums.get("loss", 0.0) + loss.item() * len(batch_images)
                seen += len(batch_images)
            state.step += 1
            state.elapsed = time.perf_counter() - started
            over_budget = config.budget_seconds > 0 and state.elapsed >= config.budget_seconds
            if should_stop() or over_budget or (max_steps and state.step >= max_steps):
                stopped = True
                break
        seconds = time.perf_counter() - epoch_start
        record = {"epoch": state.epoch + 1, "step": state.step, "lr": optimizer.param_groups[0]["lr"],
                  **{k: v / max(seen, 1) for k, v in sums.items()}, "images": seen,
                  "images_per_second": seen / seconds if seconds > 0 else 0.0, "seconds": seconds,
                  "elapsed_seconds": state.elapsed, "bad_images": len(images.skipped),
                  "complete": not stopped}
        if not stopped:
            state.epoch += 1
        state.history.append(record)
        on_message(f"epoch {record['epoch']}/{config.epochs}  loss {record.get('loss', float('nan')):.4f}  "
                   f"{record['images_per_second']:.1f} img/s  {seconds:.1f}s"
                   + ("  (stopped)" if stopped else ""))
        if not all_finite(model.state_dict()):
            raise TrainingStopped("the weights are no longer finite; last.pt was not overwritten")
        save_checkpoint(run_dir / "last.pt", checkpoint_state(model, optimizer, state, extra))
        with open(metrics, "a") as f:
            f.write(json.dumps(record) + "\n")
    return state


def loop_config_dict(config: LoopConfig) -> dict[str, Any]:
    return asdict(config)
