"""train_one_epoch and validate: typed arguments only, no argparse objects."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from googlenet.errors import TrainingStopped
from googlenet.inference.metrics import Accuracy
from googlenet.runtime.device import Precision
from googlenet.runtime.distributed import DistInfo, all_reduce_sum, any_rank
from googlenet.training.averaging import ModelAverage


class AuxForward(nn.Module):
    """Makes forward_train the forward, so that DDP and torch.compile see the auxiliary heads."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        return self.model.forward_train(x)


@dataclass
class TrainingParts:
    model: nn.Module  # the plain GoogLeNet (averaging and checkpoints use it)
    step_model: nn.Module  # what runs the step: AuxForward, maybe DDP- and compile-wrapped
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    average: ModelAverage | None  # Sec. 6's Polyak averaging
    precision: Precision
    device: torch.device
    dist: DistInfo
    aux_weight: float
    label_smoothing: float
    grad_clip: float
    channels_last: bool


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0  # the epoch in progress (0-based)
    batch_in_epoch: int = 0  # batches of that epoch already done
    step: int = 0  # optimizer steps (and skipped steps) so far
    nonfinite_in_row: int = 0
    nonfinite_total: int = 0


@dataclass
class EpochLimits:
    max_steps: int = 0  # 0: none
    max_nonfinite: int = 5
    max_bad_images: int = 50
    should_stop: Callable[[], bool] = lambda: False


@dataclass
class EpochResult:
    loss: float = 0.0
    top1: float = 0.0
    images: int = 0
    seconds: float = 0.0
    bad_images: list[str] = field(default_factory=list)
    nonfinite_skipped: int = 0
    interrupted: bool = False  # stopped before the end of the epoch

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def to_device(images: Tensor, labels: Tensor, parts: TrainingParts) -> tuple[Tensor, Tensor]:
    memory_format = torch.channels_last if parts.channels_last else torch.contiguous_format
    images = images.to(parts.device, non_blocking=True, memory_format=memory_format)
    return images, labels.to(parts.device, non_blocking=True)


def training_loss(parts: TrainingParts, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Sec. 5: the main loss plus the auxiliary losses weighted by aux_weight (0.3)."""
    with parts.precision.autocast():
        logits, aux = parts.step_model(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=parts.label_smoothing)
        for aux_logits in aux:
            loss = loss + parts.aux_weight * F.cross_entropy(
                aux_logits, labels, label_smoothing=parts.label_smoothing)
    return loss, logits


def optimizer_step(parts: TrainingParts, loss: Tensor) -> None:
    parts.scaler.scale(loss).backward()
    if parts.grad_clip > 0:
        parts.scaler.unscale_(parts.optimizer)
        nn.utils.clip_grad_norm_(parts.model.parameters(), parts.grad_clip)
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    parts.optimizer.zero_grad(set_to_none=True)
    if parts.average is not None:
        parts.average.update(parts.model)


def check_bad_images(result: EpochResult, limits: EpochLimits, epoch: int) -> None:
    if len(result.bad_images) > limits.max_bad_images:
        examples = "; ".join(result.bad_images[:3])
        raise TrainingStopped(
            f"{len(result.bad_images)} unreadable images in epoch {epoch + 1}, more than the "
            f"cap of {limits.max_bad_images} (data.max_bad_images); first: {examples}")


def note_nonfinite(progress: Progress, limits: EpochLimits) -> None:
    progress.nonfinite_in_row += 1
    progress.nonfinite_total += 1
    if progress.nonfinite_in_row >= limits.max_nonfinite:
        raise TrainingStopped(
            f"the loss was NaN or infinite in {progress.nonfinite_in_row} steps in a row "
            f"(step {progress.step}); the run stops, the last good checkpoint is kept. "
            "Try a lower learning rate, gradient clipping (optim.grad_clip) or no mixed "
            "precision (run.amp off).")


def train_one_epoch(parts: TrainingParts, batches: Iterable, progress: Progress,
                    limits: EpochLimits,
                    on_batch: Callable[[EpochResult, float], None] | None = None) -> EpochResult:
    """Train until the epoch ends or a stop is asked for; `progress` is updated in place."""
    parts.step_model.train()
    result = EpochResult()
    loss_sum = correct = 0.0
    start = time.perf_counter()
    for images, labels, bad in batches:
        result.bad_images.extend(bad)
        check_bad_images(result, limits, progress.epoch)
        skip = images.shape[0] == 0
        if not skip:
            images, labels = to_device(images, labels, parts)
            loss, logits = training_loss(parts, images, labels)
            skip = not bool(torch.isfinite(loss))
        skip, stop = any_rank([skip, limits.should_stop()], parts.dist, parts.device)
        if skip:
            parts.optimizer.zero_grad(set_to_none=True)
            if images.shape[0] > 0:
                note_nonfinite(progress, limits)
                result.nonfinite_skipped += 1
        else:
            progress.nonfinite_in_row = 0
            optimizer_step(parts, loss)
            loss_sum += loss.item() * images.shape[0]
            correct += (logits.argmax(1) == labels).sum().item()
            result.images += images.shape[0]
        parts.scheduler.step()
        progress.step += 1
        progress.batch_in_epoch += 1
        result.seconds = time.perf_counter() - start
        if on_batch is not None:
            on_batch(result, loss_sum / max(result.images, 1))
        if stop or (limits.max_steps and progress.step >= limits.max_steps):
            result.interrupted = True
            break
    loss_sum, correct, images_seen = all_reduce_sum(
        [loss_sum, correct, float(result.images)], parts.dist, parts.device)
    result.loss = loss_sum / max(images_seen, 1)
    result.top1 = correct / max(images_seen, 1)
    result.images = int(images_seen)
    result.seconds = time.perf_counter() - start
    return result


@torch.no_grad()
def estimate_batch_norm(model: nn.Module, batches: Iterable, parts: TrainingParts, count: int) -> int:
    """Batch-norm statistics of `model`'s own weights, from `count` batches (a cumulative
    average, as torch.optim.swa_utils.update_bn): the running averages (momentum 0.1, about the
    last 10 batches) describe earlier weights, and at a high learning rate or for averaged
    weights (Sec. 6) they can be far off: a validation loss in the thousands from a model whose
    batch statistics give 1.5. Returns the batches used; with none, the statistics stay."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or count <= 0:
        return 0
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone(),
              m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: the cumulative average over the batches
    was_training, used = model.training, 0
    model.eval()  # the inference path (no auxiliary heads), dropout off: no random draws
    for m in norms:
        m.train()
    for images, labels, _ in batches:
        if used == count:
            break
        if images.shape[0] == 0:
            continue
        images, _ = to_device(images, labels, parts)
        with parts.precision.autocast():
            model(images)
        used += 1
    model.train(was_training)
    for m, (momentum, mean, var, tracked) in zip(norms, saved):
        m.momentum = momentum
        if used == 0:
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(tracked)
    return used


@dataclass
class ValidationResult:
    loss: float
    top1: float
    top5: float
    images: int
    bad_images: list[str]


@torch.no_grad()
def validate(model: nn.Module, batches: Iterable, parts: TrainingParts) -> ValidationResult:
    """Loss, top-1 and top-5 of `model` (eval mode, logits only) over all batches, summed over
    every process."""
    model.eval()
    accuracy: Accuracy | None = None
    loss_sum, bad = 0.0, []
    for images, labels, bad_names in batches:
        bad.extend(bad_names)
        if images.shape[0] == 0:
            continue
        images, labels = to_device(images, labels, parts)
        with parts.precision.autocast():
            logits = model(images)
        logits = logits.float()
        accuracy = accuracy or Accuracy(logits.shape[1])
        accuracy.add(logits, labels)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
    counts = [loss_sum, *(float(getattr(accuracy, k)) if accuracy else 0.0
                          for k in ("top1", "top5", "images"))]
    loss, top1, top5, n = all_reduce_sum(counts, parts.dist, parts.device)
    n = max(n, 1.0)
    return ValidationResult(loss / n, top1 / n, top5 / n, int(n), bad)
