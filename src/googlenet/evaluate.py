"""Sec. 7: multi-crop and ensemble evaluation, and reports in the form of the paper's Table 3."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .config import DataConfig, config_from_dict
from .data import load_eval_dataset, make_loader, multi_crop
from .engine import top_predictions
from .model import GoogLeNet
from .pretrained.apply import model_from_weights
from .pretrained.sources import Weights, load_weights

AVERAGES = ("probs", "logits")


@dataclass
class EvalModel:
    path: str
    model: GoogLeNet
    classes: list[str]
    data: DataConfig  # the checkpoint's data settings: input size, normalisation, crop ratio
    averaged: bool  # the Polyak-averaged (EMA) weights were loaded


def load_for_eval(source: str | Path, device: torch.device, variant: str | None = None) -> EvalModel:
    """A model in eval mode from a checkpoint (its averaged (EMA) weights when it has them),
    published weights (`imagenet`, `bvlc`), a weights file, or an exported `.onnx`."""
    if str(source).endswith(".onnx"):
        from .onnx_backend import load_onnx_for_eval

        return load_onnx_for_eval(source)
    weights = load_weights(source, variant)
    model = model_from_weights(weights, aux_logits=False)
    model = model.to(device, memory_format=torch.channels_last).eval()
    return EvalModel(str(source), model, weights.classes, eval_data_config(weights), weights.averaged)


def eval_data_config(weights: Weights) -> DataConfig:
    """A training checkpoint's data settings; for other weights, their preprocessing and no data
    set (the caller names one)."""
    norm = weights.normalization
    data = config_from_dict(weights.config).data if weights.config else DataConfig(data="")
    return replace(data, input_size=weights.input_size, eval_crop_ratio=weights.eval_crop_ratio,
                   mean=norm.mean, std=norm.std)


def check_compatible(models: list[EvalModel]) -> None:
    first = models[0]
    for other in models[1:]:
        if other.classes != first.classes:
            raise ValueError(f"{other.path} has other classes than {first.path}: "
                             f"{other.classes} vs {first.classes}")
        for name in ("input_size", "mean", "std"):
            if getattr(other.data, name) != getattr(first.data, name):
                raise ValueError(f"{other.path} and {first.path} differ in {name}: an ensemble "
                                 "needs the same crops for every model")


def check_classes(data_classes: list[str], model: EvalModel, where: str) -> None:
    if data_classes == model.classes:
        return
    missing = sorted(set(model.classes) - set(data_classes))
    extra = sorted(set(data_classes) - set(model.classes))
    detail = (f"missing in the data: {missing}; not in the checkpoint: {extra}" if missing or extra
              else "the same names in another order")
    raise ValueError(f"the classes of {where} do not match {model.path} ({detail})")


@dataclass
class Tally:
    """Hits of one (number of models, crops) setting, plus per-class counts and a confusion matrix."""

    models: int
    crops: int
    num_classes: int
    top1: int = 0
    top5: int = 0
    images: int = 0
    confusion: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def add(self, scores: Tensor, labels: Tensor) -> None:
        top = top_predictions(scores)
        self.top1 += int((top[:, 0] == labels).sum())
        self.top5 += int((top == labels[:, None]).any(1).sum())
        self.images += len(labels)
        self.confusion.index_put_((labels, top[:, 0]), torch.ones_like(labels), accumulate=True)

    def result(self) -> EvalResult:
        n = max(self.images, 1)
        return EvalResult(self.models, self.crops, self.images, self.top1 / n, self.top5 / n)


@dataclass(frozen=True)
class EvalResult:
    models: int
    crops: int
    images: int
    top1: float
    top5: float

    @property
    def cost(self) -> int:  # forward passes per image, relative to one crop of one model
        return self.models * self.crops


@dataclass
class EvalReport:
    main: EvalResult
    table: list[EvalResult]  # every (models 1..M, crops) combination evaluated
    classes: list[str]
    per_class: list[float]  # top-1 accuracy per class, for the main setting
    confusion: Tensor  # rows: true class, columns: predicted, for the main setting
    bad_images: list[str]
    images_per_second: float
    averaged_weights: list[bool]


def crop_scores(model: GoogLeNet, images: Tensor, counts: list[int], average: str,
                chunk: int) -> list[Tensor]:
    """N x V x 3 x S x S -> one N x C score per scheme: softmax (or logits) averaged over crops."""
    n, v = images.shape[:2]
    flat = images.reshape(n * v, *images.shape[2:]).contiguous(memory_format=torch.channels_last)
    logits = torch.cat([model(flat[i:i + chunk]) for i in range(0, len(flat), chunk)]).float()
    logits = logits.reshape(n, v, -1)
    values = logits.softmax(-1) if average == "probs" else logits
    scores, start = [], 0
    for count in counts:
        scores.append(values[:, start:start + count].mean(1))
        start += count
    return scores


class EvenlySpaced(Dataset):
    """`limit` images spread evenly over a data set (sorted by class, so every class is kept)."""

    def __init__(self, dataset: Dataset, limit: int) -> None:
        total = len(dataset)  # type: ignore[arg-type]
        self.dataset, self.image_size = dataset, dataset.image_size  # type: ignore[attr-defined]
        self.indices = [int(i * total / limit) for i in range(min(limit, total))]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]):  # noqa: ANN204 - the wrapped item type
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        return self.dataset[(self.indices[index], epoch)]


@torch.no_grad()
def evaluate_checkpoints(paths: list[str], *, data: DataConfig | None = None,
                         crops: tuple[int, ...] = (1,), table: bool = False,
                         average: str = "probs", batch_size: int = 32, workers: int = 2,
                         device: torch.device = torch.device("cpu"), chunk: int = 256,
                         limit: int | None = None, data_overrides: dict | None = None,
                         on_batch: Callable[[int, float], None] | None = None,
                         variant: str | None = None) -> EvalReport:
    """Evaluate one checkpoint or an ensemble with `crops[0]` crops per image (and, with
    `table`, every number of models 1..M with every scheme in `crops`).

    Scores are averaged over crops and then over models; each image is decoded once.
    """
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {', '.join(AVERAGES)}, got {average!r}")
    if not paths:
        raise ValueError("give at least one checkpoint")
    models = [load_for_eval(path, device, variant) for path in paths]
    check_compatible(models)
    data = data or replace(models[0].data, **(data_overrides or {}))
    data = replace(data, input_size=models[0].data.input_size, mean=models[0].data.mean,
                   std=models[0].data.std)
    if not (data.data or data.val_dir):
        raise ValueError(f"{models[0].path} names no data set: give --data or --val-dir")
    transform = multi_crop(data, crops)
    dataset, classes = load_eval_dataset(data, transform)
    check_classes(classes, models[0], data.val_dir or data.data)
    if limit is not None:
        dataset = EvenlySpaced(dataset, limit)
    loader = make_loader(dataset, batch_size, train=False, workers=workers, seed=0)
    loader.set_epoch(0)
    model_counts = range(1, len(models) + 1) if table else [len(models)]
    tallies = {(k, c): Tally(k, c, len(classes)) for k in model_counts for c in crops}
    bad: list[str] = []
    start = time.perf_counter()
    seen = 0
    for images, labels, bad_names in loader:
        bad += bad_names
        if images.shape[0] == 0:
            continue
        images, labels = images.to(device), labels.to(device)
        total = None
        for k, m in enumerate(models, start=1):
            scores = crop_scores(m.model, images, transform.counts, average, chunk)
            total = scores if total is None else [t + s for t, s in zip(total, scores)]
            if k in model_counts:
                for scheme, summed in zip(crops, total):
                    tallies[(k, scheme)].add((summed / k).cpu(), labels.cpu())
        seen += len(labels)
        if on_batch is not None:
            on_batch(len(labels), seen / (time.perf_counter() - start))
    main = tallies[(len(models), crops[0])]
    if main.images == 0:
        raise ValueError(f"no readable images to evaluate in {data.val_dir or data.data}")
    per_class = (main.confusion.diag() / main.confusion.sum(1).clamp(min=1)).tolist()
    return EvalReport(main.result(), [t.result() for t in tallies.values()], classes, per_class,
                      main.confusion, bad, seen / (time.perf_counter() - start),
                      [m.averaged for m in models])
