"""Sec. 7: multi-crop and ensemble evaluation, and reports in the form of the paper's Table 3.

    report = evaluate(Predictor.load("runs/x"), "digits", crops=10)
    report = evaluate([p1, p2, p3], data, crops=144, table=True)   # Table 3: 1, 10, 144 crops
    report.best_model.name                       # its 1-model rows: the lowest top-1 error alone

Objects in, objects out: predictors (any backend, or a model in memory via
Predictor.from_model) and a labelled data set (a DataConfig, or a path, `open_eval_data`).
`crops` is the number of test-time crops per image, an int everywhere (Predictor.predict,
Predictor.transform, evaluate); Table 3's columns are `table_crops`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.utils.data import Dataset

from googlenet.arch.table import CROP_SCHEMES
from googlenet.data.config import DataConfig
from googlenet.data.crops import multi_crop
from googlenet.data.loader import make_loader
from googlenet.data.splits import load_eval_dataset
from googlenet.data.subsets import stratified
from googlenet.errors import DataError, ModelSourceError
from googlenet.inference.metrics import Accuracy
from googlenet.inference.predictor import OnBatch, Predictor


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



# Sec. 7: "For the single model case, we chose the one with the lowest top-1 error rate on the
# validation data." The paper does not say with how many crops; 1, the cheapest to measure.
RANK_CROPS = 1


@dataclass(frozen=True)
class RankedModel:
    """One model of an ensemble alone, with RANK_CROPS crops: what orders the Table 3 rows."""

    name: str  # its source: a file, a published name, "<in memory>"
    given: int  # its place in the order the models were given, from 1
    top1: float
    top5: float


RANKING = (f"each model alone with {RANK_CROPS} crop, the lowest top-1 error first (Sec. 7); "
           "ties: the lower top-5 error, then the order given")


def ranked(alone: list[RankedModel]) -> list[RankedModel]:
    """Best first, as RANKING says."""
    return sorted(alone, key=lambda r: (-r.top1, -r.top5, r.given))


@dataclass
class EvalReport:
    main: EvalResult
    table: list[EvalResult]  # every (models 1..M, crops) combination evaluated
    classes: list[str]
    per_class: list[float]  # top-1 accuracy per class, for the main setting
    confusion: Tensor  # rows: true class, columns: predicted, for the main setting
    bad_images: list[str]
    images_per_second: float
    averaged_weights: list[bool]  # in the order the models were given
    # With `table` and several models: every model alone, best first (`ranked`); the table's
    # k-model rows average the first k of them. Otherwise empty (the rows take the order given).
    ranking: list[RankedModel] = field(default_factory=list)

    @property
    def best_model(self) -> RankedModel | None:
        """The model of the 1-model rows, chosen as in Sec. 7 (None when there was no choice)."""
        return self.ranking[0] if self.ranking else None


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

    def __getitem__(self, key: int | tuple[int, int]):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        return self.dataset[(self.indices[index], epoch)]


def open_eval_data(data: str | DataConfig) -> DataConfig:
    """A data path as training reads it (digits, a folder or archive with val/, or the held-out
    share of one set of class folders); a DataConfig with val_dir evaluates that class-folder
    root whole (e.g. CIFAR-10's test.tar)."""
    return data if isinstance(data, DataConfig) else DataConfig(path=str(data))


def open_split(config: DataConfig, model: Predictor, schemes: Sequence[int],
               limit: int | None) -> tuple[Dataset, list[str], list[int]]:
    """The validation split with the views of every crop scheme in `schemes`, concatenated
    (about `limit` images, stratified, every class kept), its classes and the number of views
    of each scheme: each image is decoded once for all schemes."""
    transform = multi_crop(model.preprocessing, tuple(schemes))
    dataset, classes = load_eval_dataset(config, transform, model.preprocessing.input_size)
    check_classes(classes, model, config.val_dir or config.path)
    if limit is not None:
        dataset = Subset(dataset, stratified(dataset.targets, limit))
    return dataset, classes, transform.counts


def scored_batches(models: Sequence[Predictor], dataset: Dataset, counts: list[int], average: str,
                   batch_size: int, workers: int, bad: list[str],
                   on_batch: OnBatch | None) -> Iterator[tuple[Tensor, list[list[Tensor]]]]:
    """(labels, every model's N x C scores per crop scheme) for each batch: each image decoded
    once for all models; the names of unreadable images are added to `bad`."""
    loader = make_loader(dataset, batch_size, train=False, workers=workers, seed=0)
    loader.set_epoch(0)
    start, seen = time.perf_counter(), 0
    for views, labels, bad_names in loader:
        bad += bad_names
        if views.shape[0] == 0:
            continue
        yield labels, [model.crop_scores(views, counts, average) for model in models]
        seen += len(labels)
        if on_batch is not None:
            on_batch(len(labels), seen / (time.perf_counter() - start))


def rank_models(models: Sequence[Predictor], config: DataConfig, *, batch_size: int = 32,
                workers: int = 2, limit: int | None = None,
                on_batch: OnBatch | None = None) -> list[RankedModel]:
    """Every model alone with RANK_CROPS crops on the validation split, best first (`ranked`)."""
    dataset, classes, counts = open_split(config, models[0], (RANK_CROPS,), limit)
    tallies = [Accuracy(len(classes)) for _ in models]
    for labels, scores in scored_batches(models, dataset, counts, "probs", batch_size, workers,
                                         [], on_batch):
        for tally, (alone,) in zip(tallies, scores):
            tally.add(alone, labels)
    return ranked([RankedModel(model.name, given, t.top1_rate, t.top5_rate)
                   for given, (model, t) in enumerate(zip(models, tallies), start=1)])


@torch.no_grad()
def evaluate(models: Predictor | Sequence[Predictor], data: str | DataConfig, *,
             crops: int = 1, table: bool = False, table_crops: Sequence[int] = CROP_SCHEMES,
             average: str = "probs", batch_size: int = 32, workers: int = 2,
             limit: int | None = None, on_batch: OnBatch | None = None,
             on_start: Callable[[int], None] | None = None) -> EvalReport:
    """Evaluate one model or an ensemble with `crops` crops per image (1, 10 or 144; Sec. 7)
    and, with `table`, every number of models 1..M with `crops` and every number in
    `table_crops` (Table 3's columns), on the validation split of `data`. Scores are averaged
    over crops, then over models; each image is decoded once per pass. With `table` and
    several models, a first pass ranks the models alone (`rank_models`) and the k-model rows
    average the k best, whatever the order given (Sec. 7's Table 3).
    `limit`: about that many images, stratified (every class kept). `on_start(images)` once,
    with the images of every pass together (a progress bar's total); `on_batch(images, images/s)`
    after every batch of every pass."""
    models = [models] if isinstance(models, Predictor) else list(models)
    if not models:
        raise ValueError("give at least one model")
    check_compatible(models)
    config = open_eval_data(data)
    schemes = (crops, *(c for c in table_crops if c != crops)) if table else (crops,)
    dataset, classes, counts = open_split(config, models[0], schemes, limit)
    ranks = table and len(models) > 1  # a first pass ranks the models alone, on the same images
    if on_start is not None:
        on_start(len(dataset) * (2 if ranks else 1))
    ranking = (rank_models(models, config, batch_size=batch_size, workers=workers, limit=limit,
                           on_batch=on_batch) if ranks else [])
    ordered = [models[r.given - 1] for r in ranking] or models
    model_counts = range(1, len(models) + 1) if table else [len(models)]
    tallies = {(k, c): Accuracy(len(classes)) for k in model_counts for c in schemes}
    bad: list[str] = []
    start = time.perf_counter()
    for labels, scores in scored_batches(ordered, dataset, counts, average, batch_size, workers,
                                         bad, on_batch):
        total = None
        for k, model_scores in enumerate(scores, start=1):
            total = model_scores if total is None else [t + s for t, s in zip(total, model_scores)]
            if k in model_counts:
                for scheme, summed in zip(schemes, total):
                    tallies[(k, scheme)].add(summed / k, labels)
    main = tallies[(len(models), crops)]
    if main.images == 0:
        raise DataError(f"no readable images to evaluate in {config.val_dir or config.path}")
    results = {key: EvalResult(*key, t.images, t.top1_rate, t.top5_rate) for key, t in tallies.items()}
    return EvalReport(results[(len(models), crops)], list(results.values()), classes,
                      main.per_class(), main.confusion, bad, main.images / (time.perf_counter() - start),
                      [m.artifact.provenance.averaged for m in models], ranking)
