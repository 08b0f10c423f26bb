"""Evaluation reports: the headline numbers, per-class accuracy, a Table-3-style table, a confusion PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from googlenet.formatting import render_table
from googlenet.inference.evaluate import RANKING, EvalReport, EvalResult, RankedModel
from googlenet.inference.predictor import Prediction


def result_record(r: EvalResult) -> dict[str, Any]:
    return {"models": r.models, "crops": r.crops, "cost": r.cost, "images": r.images,
            "top1": r.top1, "top5": r.top5, "top1_error": 1 - r.top1, "top5_error": 1 - r.top5}


def ranked_record(r: RankedModel) -> dict[str, Any]:
    return {"name": r.name, "given": r.given, "top1": r.top1, "top5": r.top5,
            "top1_error": 1 - r.top1, "top5_error": 1 - r.top5}


def report_record(report: EvalReport, with_table: bool) -> dict[str, Any]:
    record = {**result_record(report.main),
              "per_class": dict(zip(report.classes, report.per_class)),
              "bad_images": report.bad_images, "images_per_second": report.images_per_second,
              "averaged_weights": report.averaged_weights}
    if with_table:
        record["table"] = [result_record(r) for r in report.table]
    if with_table and report.best_model is not None:
        record |= {"best_model": report.best_model.name, "ranked_by": RANKING,
                   "ranking": [ranked_record(r) for r in report.ranking]}
    return record


def percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def table3_rows(results: list[EvalResult]) -> list[list[str]]:
    """The paper's Table 3 columns, with top-1 beside top-5; deltas against the first row."""
    base = results[0]
    rows = []
    for r in results:
        # the paper's "compared to base": the change in top-5 error (negative is better)
        delta = "base" if r is base else f"{100 * (base.top5 - r.top5):+.2f}%"
        rows.append([str(r.models), str(r.crops), str(r.cost), percent(1 - r.top1),
                     percent(1 - r.top5), delta])
    return rows


def ranking_note(report: EvalReport, fmt: str) -> list[str]:
    """Under Table 3: which model the 1-model rows are, and the order the k-model rows add them."""
    best = report.best_model
    if best is None:
        return []
    rows = [[str(rank), r.name, str(r.given), percent(1 - r.top1), percent(1 - r.top5)]
            for rank, r in enumerate(report.ranking, start=1)]
    return ["", f"1-model rows: the best single model, {best.name} (model {best.given} as given); "
                "k-model rows: the first k models below.",
            f"Ranked by {RANKING}:", "",
            render_table(["rank", "model", "given", "top-1 error", "top-5 error"], rows, fmt)]


def render_evaluation(report: EvalReport, fmt: str = "text", with_table: bool = False) -> str:
    if fmt == "json":
        return json.dumps(report_record(report, with_table), indent=2)
    m = report.main
    lines = [f"{m.models} model(s), {m.crops} crop(s) per image, {m.images} images: "
             f"top-1 {percent(m.top1)} (error {percent(1 - m.top1)}), "
             f"top-5 {percent(m.top5)} (error {percent(1 - m.top5)}); "
             f"{report.images_per_second:.1f} images/s"]
    if report.bad_images:
        lines.append(f"skipped {len(report.bad_images)} unreadable: "
                     + "; ".join(report.bad_images[:5]))
    lines += ["", render_table(["class", "top-1"], [[c, percent(a)] for c, a in
                                                    zip(report.classes, report.per_class)], fmt)]
    if with_table:
        headers = ["models", "crops", "cost", "top-1 error", "top-5 error", "top-5 vs base"]
        lines += ["", render_table(headers, table3_rows(report.table), fmt), *ranking_note(report, fmt)]
    return "\n".join(lines)


def save_confusion_matrix(report: EvalReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(report.classes)
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * n), max(4, 0.45 * n)))
    image = ax.imshow(report.confusion.numpy(), cmap="Blues")
    if n <= 40:
        ax.set_xticks(range(n), report.classes, rotation=90)
        ax.set_yticks(range(n), report.classes)
    ax.set(xlabel="predicted", ylabel="true",
           title=f"top-1 {percent(report.main.top1)}, {report.main.crops} crop(s)")
    fig.colorbar(image)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def render_predictions(predictions: list[Prediction], fmt: str) -> str:
    """JSON, or one line per image ("file: class prob, ..." or "file: error: why")."""
    if fmt == "json":
        return json.dumps([{"file": p.file, "error": p.error} if p.error else
                           {"file": p.file, "predictions": [
                               {"class": c, "probability": q}
                               for c, q in zip(p.classes, p.probabilities)]}
                           for p in predictions], indent=2)
    lines = []
    for p in predictions:
        name = printable(p.file or "")
        if p.error:
            lines.append(f"{name}: error: {p.error}")
        else:
            lines.append(f"{name}: " + ", ".join(f"{c} {q:.3f}"
                                                 for c, q in zip(p.classes, p.probabilities)))
    return "\n".join(lines)


def printable(name: str) -> str:
    """A file name on one line: control characters (a newline, say) escaped as in Python."""
    return "".join(repr(c)[1:-1] if ord(c) < 32 or ord(c) == 127 or c == "\\" else c for c in name)
