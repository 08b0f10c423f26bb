"""Detection on raccoon (Sec. 8): the paper's R-CNN-style detector and Faster R-CNN on a GoogLeNet
trunk, against torchvision's fasterrcnn_mobilenet_v3_large_320_fpn, one budget each.

    python benchmarks/detection.py --minutes 30            # the issue's budget, about 2 hours in all
    python benchmarks/detection.py --recall-only          # proposals' recall, first (no training)
    python benchmarks/detection.py --minutes 6             # what results/detection.md holds
    python benchmarks/detection.py --pictures-from runs/bench-detection/STAMP   # redraw the pictures

Every detector starts from the same kind of initialisation: no ImageNet weights for anyone (our
trunks fresh, the peer with weights=None and weights_backbone=None). Each trains on raccoon's
train split (160 images) for --minutes of wall-clock time, one after the other on the same
machine, and is evaluated on the test split (40 images): COCO mAP@[.5:.95], AP50 and AP75 by
pycocotools, VOC AP50, and detection speed (images/s from the decoded image: for R-CNN the
Selective Search, the warping, the classifier and NMS; nothing cached). R-CNN's budget covers
the extraction of its region crops and the classifier's training; the Selective Search
proposals of the training images are computed once before its clock starts (their time is
reported), as R-CNN precomputes them. Proposal recall is measured on the test splits of
raccoon and coco128 (all 40 and 25 images), for every Selective Search setting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "src"))

from googlenet.detection.data import load_detection  # noqa: E402
from googlenet.detection.detector import load_detector  # noqa: E402
from googlenet.detection.evaluate import evaluate_detector  # noqa: E402
from googlenet.detection.proposals import DEFAULT_SETTING, SETTINGS, ProposalCache, measure_recall  # noqa: E402
from googlenet.detection.train import DetectConfig, train_detection  # noqa: E402

METHODS = ("rcnn", "faster-rcnn", "fasterrcnn-mobilenet")
TITLES = {"rcnn": "R-CNN style (Sec. 8)", "faster-rcnn": "Faster R-CNN, GoogLeNet + FPN",
          "fasterrcnn-mobilenet": "peer: MobileNetV3-Large FPN"}
MIN_SCORE = 0.3  # as `googlenet detect predict` draws
LABELS = {"rcnn": "R-CNN style (Sec. 8), bn GoogLeNet region classifier from fresh weights",
          "faster-rcnn": "Faster R-CNN, GoogLeNet trunk + FPN (3b, 4e, 5b)",
          "fasterrcnn-mobilenet": "peer: torchvision fasterrcnn_mobilenet_v3_large_320_fpn"}


def recall_rows(cache: ProposalCache) -> list[dict]:
    rows = []
    for name in ("raccoon", "coco128"):
        if not (DATA / name).is_dir():
            continue
        samples = load_detection(DATA / name, "test").samples
        for setting in SETTINGS:
            r = measure_recall(samples, setting, cache=cache)
            rows.append({"data": f"{name} test", "setting": setting, "images": r.images,
                         "objects": r.objects, "proposals_per_image": r.proposals_per_image,
                         "recall_50": r.recall[0.5], "recall_70": r.recall[0.7],
                         "seconds_per_image": r.seconds_per_image})
            print("recall", rows[-1], flush=True)
    return rows


def config_for(method: str, args: argparse.Namespace, out: Path) -> DetectConfig:
    common = dict(data=str(DATA / "raccoon"), method=method, split="train", output=str(out / method),
                  minutes=args.minutes, seed=args.seed, device="cpu")
    if method == "rcnn":
        return DetectConfig(**common, proposals=args.proposals, input_size=args.input_size,
                            batch_size=args.rcnn_batch_size, background_ratio=args.background_ratio,
                            all_background=args.all_background, cache_dir=str(out / "proposals"))
    return DetectConfig(**common, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        image_size=args.image_size)


def prepare_proposals(args: argparse.Namespace, out: Path) -> float:
    """The training images' proposals, before R-CNN's clock starts (a fresh cache: the time is real)."""
    start = time.perf_counter()
    measure_recall(load_detection(DATA / "raccoon", "train").samples, args.proposals,
                   cache=ProposalCache(out / "proposals"))
    return time.perf_counter() - start


def run(method: str, args: argparse.Namespace, out: Path) -> dict:
    config = config_for(method, args, out)
    prepared = prepare_proposals(args, out) if method == "rcnn" else 0.0
    result = train_detection(config, on_message=lambda m: print(f"  [{method}] {m}", flush=True))
    detector = load_detector(result.run_dir, device="cpu")
    scores = evaluate_detector(detector, load_detection(DATA / "raccoon", "test"))
    row = {"method": method, "label": LABELS[method], "train_seconds": result.seconds,
           "stop": result.stop_reason, "proposal_seconds": prepared, **scores.to_dict()}
    print(method, json.dumps(row), flush=True)
    return row


def markdown(rows: list[dict], recall: list[dict], args: argparse.Namespace, command: str) -> str:
    lines = [
        "# Detection on raccoon (Sec. 8)", "",
        f"Command: `{command}`", "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{__import__('torch').__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Budget: {args.minutes:g} minutes of training per detector, one after the other; no "
        "ImageNet weights for any detector.", "",
        "| detector | minutes (setup and training) | stopped by | COCO mAP | COCO AP50 | COCO AP75 "
        "| VOC AP50 | images/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['train_seconds'] / 60:.1f} | {r['stop']} | "
                     f"{100 * r['map']:.2f}% | {100 * r['ap50']:.2f}% | {100 * r['ap75']:.2f}% | "
                     f"{100 * r['voc_map50']:.2f}% | {r['images_per_second']:.2f} |")
    for r in rows:
        if r["proposal_seconds"]:
            lines += ["", f"R-CNN's training proposals ({args.proposals} Selective Search, 160 images) took "
                      f"{r['proposal_seconds']:.0f} s before its budget started."]
    lines += ["", "Selective Search proposals (images shrunk to 500 pixels on the longer side):", "",
              "| data | setting | images | objects | proposals/image | recall@0.5 | recall@0.7 | s/image |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in recall:
        lines.append(f"| {r['data']} | {r['setting']} | {r['images']} | {r['objects']} | "
                     f"{r['proposals_per_image']:.0f} | {100 * r['recall_50']:.1f}% | "
                     f"{100 * r['recall_70']:.1f}% | {r['seconds_per_image']:.2f} |")
    return "\n".join(lines) + "\n"


def example_pictures(runs: Path, methods: list[str], count: int, target: Path, width: int = 300) -> None:
    """The first `count` test photographs with each detector's boxes: a row a photograph, a column
    a detector (`googlenet detect predict`'s drawing, shrunk to `width` pixels)."""
    from PIL import Image, ImageDraw, ImageFont

    from googlenet.detection.evaluate import annotate, detect_files

    names = (DATA / "raccoon" / "splits" / "test.txt").read_text().split()[:count]
    files = [DATA / "raccoon" / "images" / name for name in names]
    columns = []
    for method in methods:
        detector = load_detector(runs / method, device="cpu", cache=ProposalCache(runs / "proposals"))
        drawn: list[Image.Image] = []

        def keep(result, image, detector=detector, drawn=drawn):
            drawn.append(annotate(image, result.detections, detector.classes, MIN_SCORE))

        detect_files(detector, files, keep)
        columns.append([p.resize((width, round(p.height * width / p.width)), Image.LANCZOS) for p in drawn])
    heights = [max(column[row].height for column in columns) for row in range(len(files))]
    gap, title = 8, 26
    sheet = Image.new("RGB", (len(columns) * (width + gap) - gap, title + sum(heights) + gap * len(files)),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for c, (method, column) in enumerate(zip(methods, columns)):
        x = c * (width + gap)
        draw.text((x + 2, 4), TITLES[method], fill="black", font=ImageFont.load_default(15))
        y = title
        for picture, height in zip(column, heights):
            sheet.paste(picture, (x, y))
            y += height + gap
    target.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(target, quality=85)
    print(f"pictures of {len(files)} test photographs: {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget per detector")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench-detection")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "detection")
    parser.add_argument("--proposals", default=DEFAULT_SETTING, choices=tuple(SETTINGS))
    parser.add_argument("--input-size", type=int, default=32, help="R-CNN's warped regions")
    parser.add_argument("--background-ratio", type=float, default=5.0,
                        help="R-CNN: background crops per object crop")
    parser.add_argument("--all-background", action="store_true",
                        help="R-CNN: every background proposal, the object crops repeated to the ratio")
    parser.add_argument("--rcnn-batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=320, help="Faster R-CNN's shorter side")
    parser.add_argument("--batch-size", type=int, default=4, help="Faster R-CNN's images per step")
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--epochs", type=int, default=1000, help="Faster R-CNN: the budget stops first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recall-only", action="store_true",
                        help="measure the proposals' recall (written to RESULTS_recall.json) and stop")
    parser.add_argument("--pictures-from", type=Path, metavar="RUNS",
                        help="only draw the example pictures from a finished run's folder (RUNS/<method>)")
    parser.add_argument("--pictures", type=int, default=2, help="test photographs drawn")
    args = parser.parse_args()
    pictures = args.results.with_name(args.results.name + "_examples.jpg")
    if args.pictures_from:
        example_pictures(args.pictures_from, args.methods, args.pictures, pictures)
        return
    command = "python benchmarks/detection.py " + " ".join(sys.argv[1:])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out / stamp
    out.mkdir(parents=True, exist_ok=True)
    recall_file = args.results.with_name(args.results.name + "_recall.json")
    if args.recall_only or not recall_file.is_file():
        recall = recall_rows(ProposalCache(None))
        recall_file.parent.mkdir(parents=True, exist_ok=True)
        recall_file.write_text(json.dumps({"command": command, "recall": recall}, indent=1))
        if args.recall_only:
            return
    recall = json.loads(recall_file.read_text())["recall"]  # measured by --recall-only, or just now
    rows = [run(method, args, out) for method in args.methods]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.with_suffix(".json").write_text(json.dumps(
        {"command": command, "minutes": args.minutes, "rows": rows, "recall": recall}, indent=1))
    text = markdown(rows, recall, args, command)
    args.results.with_suffix(".md").write_text(text)
    print(text)
    example_pictures(out, args.methods, args.pictures, pictures)


if __name__ == "__main__":
    main()
