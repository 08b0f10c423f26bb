"""Table 3 of an ensemble (Sec. 7): the 1-model rows are the best single model, the k-model rows
the k best, whatever the order the models are given in. Fake models that read a grey level
(class c is the grey 15 + 30c), each misreading its own classes: their errors are known."""

import json
from itertools import permutations

import pytest
import torch
from PIL import Image
from torch import Tensor

from googlenet.artifact.record import Artifact, Provenance
from googlenet.data.config import DataConfig
from googlenet.data.preprocessing import Preprocessing
from googlenet.inference.evaluate import RankedModel, evaluate, ranked
from googlenet.inference.predictor import Predictor
from googlenet.inference.report import render_evaluation

CLASSES = 8
RAW = Preprocessing(input_size=16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), value_scale=255.0)


class GreyReader:
    """Logits of the class whose grey level an image has; `misread` maps a class to the wrong
    one predicted instead, the true class second (or, `buried`, last: out of the top 5)."""

    name, device = "torch", torch.device("cpu")

    def __init__(self, misread: dict[int, int], confidence: float, buried: bool = False) -> None:
        self.misread, self.confidence, self.buried = misread, confidence, buried

    def __call__(self, images: Tensor) -> Tensor:
        read = ((images.mean((1, 2, 3)) - 15) / 30).round().long().tolist()
        logits = torch.zeros(len(read), CLASSES)
        for i, true in enumerate(read):
            logits[i, self.misread.get(true, true)] = self.confidence
            if true in self.misread:
                logits[i, true] = -self.confidence if self.buried else self.confidence / 2
        return logits


def reader(name: str, misread: dict[int, int], confidence: float, buried: bool = False) -> Predictor:
    artifact = Artifact("bn", tuple(str(c) for c in range(CLASSES)), RAW,
                        provenance=Provenance(source=name))
    return Predictor(artifact, GreyReader(misread, confidence, buried))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def greys(tmp_path_factory) -> DataConfig:
    root = tmp_path_factory.mktemp("greys") / "val"
    for c in range(CLASSES):
        (root / str(c)).mkdir(parents=True)
        for size in ((20, 20), (30, 20)):
            Image.new("RGB", size, (15 + 30 * c,) * 3).save(root / str(c) / f"{size[0]}.png")
    return DataConfig(path="", val_dir=str(root))


# Top-1 errors alone: A 2/8, B 1/8, C 0, D 4/8. Given A, B, C, D, the best (C) comes third.
MODELS = {"A": ({0: 1, 1: 2}, 6.0), "B": ({2: 3}, 8.0), "C": ({}, 10.0),
          "D": ({0: 7, 1: 7, 2: 7, 3: 7}, 4.0)}


def models(names: str) -> list[Predictor]:
    return [reader(name, *MODELS[name]) for name in names]


def table(names: str, data: DataConfig):
    return evaluate(models(names), data, crops=1, table=True, table_crops=(1, 10), workers=0)


def test_the_rows_do_not_depend_on_the_order_given(greys):
    reports = [table("".join(order), greys) for order in permutations("ABCD")][::5]
    assert len(reports) == 5
    assert all(r.table == reports[0].table for r in reports)
    assert all([m.name for m in r.ranking] == ["C", "B", "A", "D"] for r in reports)


def test_the_best_single_model_is_the_lowest_error_and_named(greys):
    report = table("ABCD", greys)
    assert report.best_model == RankedModel("C", given=3, top1=1.0, top5=1.0)
    assert [(m.name, m.given, m.top1) for m in report.ranking] == [
        ("C", 3, 1.0), ("B", 2, 7 / 8), ("A", 1, 6 / 8), ("D", 4, 4 / 8)]
    one_model = {r.crops: r.top1 for r in report.table if r.models == 1}
    assert one_model == {1: 1.0, 10: 1.0}  # C's, not A's (the first given: 6/8)
    text = render_evaluation(report, with_table=True)
    assert "1-model rows: the best single model, C (model 3 as given)" in text
    assert "the lowest top-1 error first" in text
    record = json.loads(render_evaluation(report, "json", with_table=True))
    assert record["best_model"] == "C" and [r["given"] for r in record["ranking"]] == [3, 2, 1, 4]


def test_the_k_model_rows_ensemble_the_k_best(greys):
    report = table("DABC", greys)
    for k, best_k in enumerate(["C", "CB", "CBA", "CBAD"], start=1):
        for crops in (1, 10):
            alone = evaluate(models(best_k), greys, crops=crops, workers=0).main
            row = next(r for r in report.table if (r.models, r.crops) == (k, crops))
            assert (row.top1, row.top5, row.images) == (alone.top1, alone.top5, alone.images)
    first_two_given = evaluate(models("DA"), greys, workers=0).main
    two_best = next(r for r in report.table if (r.models, r.crops) == (2, 1))
    assert two_best.top1 > first_two_given.top1  # what the rows were before


def test_ties_go_to_the_lower_top5_error_then_the_order_given(greys):
    even = [RankedModel("x", 1, 0.5, 0.9), RankedModel("y", 2, 0.5, 0.95),
            RankedModel("z", 3, 0.5, 0.95), RankedModel("w", 4, 0.6, 0.6)]
    assert [r.name for r in ranked(even)] == ["w", "y", "z", "x"]
    # B misreads 2 as 3 as P does, but P buries the true class: the same top-1, a worse top-5
    pair = [reader("P", {2: 3}, 8.0, buried=True), reader("B", *MODELS["B"])]
    report = evaluate(pair, greys, table=True, table_crops=(1,), workers=0)
    assert [(m.name, m.top1, m.top5) for m in report.ranking] == [("B", 7 / 8, 1.0),
                                                                  ("P", 7 / 8, 7 / 8)]
