"""Sec. 7: multi-crop and ensemble evaluation, and reports in the form of the paper's Table 3.

    report = evaluate(Predictor.load("runs/x"), open_eval_data("digits"), crops=(10,))
    report = evaluate([p1, p2, p3], data, crops=(1, 10, 144), table=True)   # Table 3

Objects in, objects out: predictors (any backend, or a model in memory via
Predictor.from_model) and a labelled data set; `evaluate_sources` is the thin wrapper
that takes model sources and a data path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

from googlenet.data.config import DataConfig
from googlenet.data.load import load_eval_dataset
from googlenet.data.loader import make_loader
from googlenet.data.subsets import stratified
from googlenet.errors import DataError, ModelSourceError
from googlenet.inference.metrics import Accuracy
from googlenet.inference.predictor import Predictor


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


def check_compatible(models: Sequence[Predictor]) -> None:
    """An ensemble averages scores of the same crops: same classes and preprocessing."""
    first = models[0]
    for other in models[1:]:
        if other.classes != first.classes:
            raise ModelSourceError(f"{other.name} has other classes than {first.name}: "
                                   f"{list(other.classes)} vs {list(first.classes)}")
        if other.preprocessing != first.preprocessing:
            raise ModelSourceError(f"{other.name} and {first.name} differ in preprocessing: an "
                                   "ensemble needs the same crops for every model")


def check_classes(data_classes: Sequence[str], model: Predictor, where: str) -> None:
    if tuple(data_classes) == model.classes:
        return
    missing = sorted(set(model.classes) - set(data_classes))
    extra = sorted(set(data_classes) - set(model.classes))
    detail = (f"missing in the data: {missing[:10]}; not in the model: {extra[:10]}" if missing or extra
              else "the same names in another order")
    raise DataError(f"the classes of {where} do not match {model.name} ({detail})")


class Subset(Dataset):
    """Some items of a data set (keys as (index, epoch) pairs pass through)."""

    def __init__(self, dataset: Dataset, indices: list[int]) -> None:
        self.dataset, self.indices = dataset, indices
        self.image_size = dataset.image_size  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]):  # noqa: ANN204 - the wrapped item type
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        return self.dataset[(self.indices[index], epoch)]


def open_eval_data(data: str | DataConfig) -> DataConfig:
    """A data path as training reads it (digits, a folder or archive with val/, or the held-out
    share of one set of class folders); a DataConfig with val_dir evaluates that class-folder
    root whole (e.g. CIFAR-10's test.tar)."""
    return data if isinstance(data, DataConfig) else DataConfig(path=str(data))


@torch.no_grad()
def evaluate(models: Predictor | Sequence[Predictor], data: str | DataConfig, *,
             crops: Sequence[int] = (1,), table: bool = False, average: str = "probs",
             batch_size: int = 32, workers: int = 2, limit: int | None = None,
             on_batch: Callable[[int, float], None] | None = None) -> EvalReport:
    """Evaluate one model or an ensemble with `crops[0]` crops per image (and, with `table`,
    every number of models 1..M with every scheme in `crops`) on the validation split of
    `data`. Scores are averaged over crops, then over models; each image is decoded once.
    `limit`: about that many images, stratified (every class kept)."""
    models = [models] if isinstance(models, Predictor) else list(models)
    if not models:
        raise ValueError("give at least one model")
    check_compatible(models)
    config = open_eval_data(data)
    transform = models[0].transform(crops)
    dataset, classes = load_eval_dataset(config, transform, models[0].preprocessing.input_size)
    where = config.val_dir or config.path
    check_classes(classes, models[0], where)
    if limit is not None:
        dataset = Subset(dataset, stratified(dataset.targets, limit))
    loader = make_loader(dataset, batch_size, train=False, workers=workers, seed=0)
    loader.set_epoch(0)
    model_counts = range(1, len(models) + 1) if table else [len(models)]
    tallies = {(k, c): Accuracy(len(classes)) for k in model_counts for c in crops}
    bad: list[str] = []
    start, seen = time.perf_counter(), 0
    for views, labels, bad_names in loader:
        bad += bad_names
        if views.shape[0] == 0:
            continue
        total = None
        for k, model in enumerate(models, start=1):
            scores = model.crop_scores(views, transform.counts, average)
            total = scores if total is None else [t + s for t, s in zip(total, scores)]
            if k in model_counts:
                for scheme, summed in zip(crops, total):
                    tallies[(k, scheme)].add(summed / k, labels)
        seen += len(labels)
        if on_batch is not None:
            on_batch(len(labels), seen / (time.perf_counter() - start))
    main = tallies[(len(models), crops[0])]
    if main.images == 0:
        raise DataError(f"no readable images to evaluate in {where}")
    results = {key: EvalResult(*key, t.images, t.top1_rate, t.top5_rate) for key, t in tallies.items()}
    return EvalReport(results[(len(models), crops[0])], list(results.values()), classes,
                      main.per_class(), main.confusion, bad, seen / (time.perf_counter() - start),
                      [m.artifact.provenance.averaged for m in models])

