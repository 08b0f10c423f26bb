"""`googlenet detect train | evaluate | predict | proposals`: parse, call googlenet.detection, print."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from googlenet.cli.args import add_device, add_force, add_format, add_renamed, add_threads, positive_int

METHODS = ("rcnn", "faster-rcnn", "fasterrcnn-mobilenet")  # googlenet.detection.detector.METHODS
SETTINGS = ("paper", "rcnn", "opencv-fast", "opencv-fast-2x")  # googlenet.detection.proposals.SETTINGS
BAD = ("error", "skip")
DEFAULT_CACHE = "~/.cache/googlenet/proposals"


def add_detect(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "detect", help="object detection (Sec. 8): R-CNN with GoogLeNet, or Faster R-CNN on its trunk",
        description="Detection, the paper's second task (Sec. 8). Data: a PASCAL VOC folder "
                    "(annotations/*.xml, images/) or a COCO folder (annotations/instances_*.json), "
                    "with optional split lists (splits/NAME.txt). Needs pip install 'googlenet[detect]'.")
    sub = p.add_subparsers(dest="detect_command", required=True, metavar="SUBCOMMAND")
    add_train(sub)
    add_evaluate(sub)
    add_predict(sub)
    add_proposals(sub)


def add_data(p: argparse.ArgumentParser, split: str | None, required: bool = True) -> None:
    p.add_argument("--data", required=required, help="a VOC or COCO folder (or a COCO json file)")
    p.add_argument("--split", default=split, help=f"a split name (splits/NAME.txt) or a file of image "
                   f"names (default: {split or 'every annotated image'}); 'all' for every image")
    p.add_argument("--bad-annotations", choices=BAD, default="error",
                   help="error: stop at the first bad box, unknown class or missing image, naming the "
                        "file; skip: drop it, count it and go on")


def add_common(p: argparse.ArgumentParser) -> None:
    add_device(p)
    add_threads(p)


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a detector on VOC or COCO data",
                       description="Train the paper's R-CNN-style detector (rcnn: Selective Search "
                       "proposals, GoogLeNet region classifier fine-tuned on warped crops, per-class "
                       "NMS) or Faster R-CNN on a GoogLeNet trunk with a feature pyramid over "
                       "Inception 3b, 4e and 5b (faster-rcnn).")
    add_data(p, "train", required=False)
    p.add_argument("--method", choices=METHODS, default="rcnn",
                   help="rcnn (the paper's, Sec. 8), faster-rcnn (GoogLeNet trunk) or "
                        "fasterrcnn-mobilenet (torchvision's mobilenet_v3_large_320_fpn, for comparison)")
    p.add_argument("-m", "--model", help="the GoogLeNet to start from: a run directory, a checkpoint, "
                   "imagenet, bvlc or a weights file (default: fresh weights)")
    p.add_argument("--preprocess", choices=("imagenet", "inception", "caffe"),
                   help="the input normalisation of a bare state dict")
    p.add_argument("--variant", choices=("paper", "bn"), help="fresh weights: the variant (default bn)")
    p.add_argument("--output-dir", metavar="DIR",
                   help="the run directory (default runs/<time>-detect-<method>)")
    add_renamed(p, "--output", "--output-dir", metavar="DIR")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a detection run")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--lr", type=float)
    p.add_argument("--minutes", type=float, default=0.0,
                   help="a wall-clock budget for the training; the schedule fits it (0: none)")
    p.add_argument("--max-steps", type=int, default=0, help="this call only: stop at this step")
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("rcnn")
    g.add_argument("--recipe", help="the region classifier's googlenet train recipe (default: "
                   "finetune with --model, else fast)")
    g.add_argument("--input-size", type=positive_int,
                   help="the warped regions' size (default 224 with --model, else 64)")
    g.add_argument("--proposals", choices=SETTINGS, default="paper",
                   help="Selective Search's fast mode: paper (Sec. 8: R-CNN's superpixels 2x larger, "
                        "k 100 and 200), rcnn (R-CNN's, k 50 and 100), opencv-fast (OpenCV's own, "
                        "k 150 to 450) or opencv-fast-2x (OpenCV's with k doubled)")
    g.add_argument("--background-ratio", type=float, default=3.0,
                   help="background crops per object crop (R-CNN's 3: 96 background to 32 objects)")
    g.add_argument("--all-background", action="store_true",
                   help="keep every background proposal and repeat the object crops to the ratio "
                   "(R-CNN's sampling; epochs grow with the proposals)")
    g.add_argument("--max-side", type=positive_int, default=500,
                   help="images are shrunk to this many pixels for Selective Search")
    g.add_argument("--val-split", help="regions of this split validate the classifier (default: the "
                   "training images' own)")
    g.add_argument("--cache-dir", default=DEFAULT_CACHE, help="where proposals are cached")
    g = p.add_argument_group("faster-rcnn")
    g.add_argument("--image-size", type=positive_int, default=320, help="the images' shorter side")
    add_device(p)
    # its own dest: the CLI's free-core policy does not apply to training, whose results depend
    # on the count (runtime.threads); a resumed run keeps its recorded count unless given one
    p.add_argument("--threads", dest="train_threads", type=positive_int, default=0,
                   help="intra-op threads, fixed for the run (default: OMP_NUM_THREADS, else every "
                        "core; a resume: the run's own)")
    p.set_defaults(run=run_train)


def split_arg(value: str | None) -> str | None:
    return None if value in (None, "all") else value


def run_train(args: argparse.Namespace) -> int:
    from googlenet.cli.progress import Progress
    from googlenet.cli.train import StopSignals
    from googlenet.detection.train import DetectConfig, train_detection

    set_threads(args.train_threads)  # rcnn: as asked; faster-rcnn sets (and records) its own
    if not args.data and not args.resume:
        raise ValueError("--data is required (or --resume)")
    config = DetectConfig(
        data=args.data or "", method=args.method, split=split_arg(args.split), val_split=args.val_split,
        model=args.model, preprocess=args.preprocess, variant=args.variant, output=args.output_dir,
        seed=args.seed, device=args.device, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        minutes=args.minutes, on_bad=args.bad_annotations, recipe=args.recipe,
        input_size=args.input_size, proposals=args.proposals,
        background_ratio=args.background_ratio, all_background=args.all_background,
        max_side=args.max_side,
        cache_dir=args.cache_dir, image_size=args.image_size, threads=args.train_threads)
    stop = StopSignals()
    progress = Progress("detect train", "batch")  # a bar per stage: proposals, then each epoch
    with stop.installed():
        try:
            result = train_detection(config, resume=args.resume, on_message=progress.write,
                                     should_stop=stop, max_steps=args.max_steps, on_progress=progress.report)
        finally:
            progress.close()
    print(f"{result.method}: {result.stop_reason} in {result.seconds:.0f} s; run directory: {result.run_dir}")
    if result.stop_reason in ("signal", "max_steps"):
        print(f"continue with: googlenet detect train --resume {result.run_dir}")
    return 75 if result.stop_reason == "signal" else 0


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="COCO mAP, AP50, AP75 (pycocotools) and VOC AP50 per class",
                       description="Evaluate a detection run on annotated data.")
    p.add_argument("-m", "--model", required=True, help="a detection run directory")
    add_data(p, "test", required=False)
    p.add_argument("--max-proposals", type=positive_int, help="rcnn: proposals per image at most")
    p.add_argument("--cache-dir", help="rcnn: reuse cached proposals (default: none, so images/s "
                   "includes Selective Search)")
    add_common(p)
    add_format(p)
    p.set_defaults(run=run_evaluate)


def load(args: argparse.Namespace):
    from googlenet.detection.detector import load_detector
    from googlenet.detection.proposals import ProposalCache

    settings = {"max_proposals": args.max_proposals} if getattr(args, "max_proposals", None) else {}
    cache = ProposalCache(Path(args.cache_dir).expanduser() if args.cache_dir else None)
    return load_detector(args.model, device=args.device, cache=cache, **settings)


def run_evaluate(args: argparse.Namespace) -> int:
    from googlenet.cli.progress import Progress
    from googlenet.detection.data import load_detection
    from googlenet.detection.detector import read_record
    from googlenet.detection.evaluate import evaluate_detector

    set_threads(args.threads)
    data_path = args.data or read_record(args.model)["data"]
    data = load_detection(data_path, split_arg(args.split), args.bad_annotations)
    progress = Progress("detect evaluate", "img", enabled=args.format != "json")
    progress.start(len(data.samples))
    scores = evaluate_detector(load(args), data,
                               on_image=lambda done, total: progress.update(done - progress.done))
    progress.close()
    values = {"model": args.model, "data": data_path, "split": args.split, **scores.to_dict()}
    if args.format == "json":
        print(json.dumps(values, indent=1))
        return 0
    rows = [("COCO mAP@[.5:.95]", scores.coco.map), ("COCO AP50", scores.coco.ap50),
            ("COCO AP75", scores.coco.ap75),
            *((f"VOC AP50 {name}", v) for name, v in scores.voc_ap50.items())]
    if args.format == "markdown":
        print("| metric | value |\n| --- | --- |")
        print("\n".join(f"| {name} | {100 * v:.2f}% |" for name, v in rows))
    else:
        print("\n".join(f"{name:<28} {100 * v:6.2f}%" for name, v in rows))
    print(f"{scores.images} images, {scores.images_per_second:.2f} images/s (detection)"
          + (f", {len(scores.skipped)} unreadable skipped" if scores.skipped else ""), file=sys.stderr)
    for line in scores.skipped:
        print(f"skipped {line}", file=sys.stderr)
    return 0


def add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="boxes as JSON and an annotated PNG per image",
                       description="Detect objects in image files and folders: boxes (x1, y1, x2, y2 "
                       "in pixels), classes and scores as JSON on stdout, and IMAGE.detections.png "
                       "with the boxes drawn, in --output-dir.")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("-m", "--model", required=True, help="a detection run directory")
    p.add_argument("--output-dir", metavar="DIR", help="where the annotated PNGs go (default: "
                   "detections/ in the detection run)")
    p.add_argument("--min-score", type=float, default=0.3, help="boxes drawn (and listed) from this score")
    p.add_argument("--max-proposals", type=positive_int, help="rcnn: proposals per image at most")
    p.add_argument("--cache-dir", help="rcnn: cache proposals here")
    add_force(p)
    add_common(p)
    p.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from googlenet.artifact.rundir import default_output
    from googlenet.detection.evaluate import annotate, detect_files
    from googlenet.detection.metrics import Detections
    from googlenet.inference.predictor import find_images
    from googlenet.runtime.files import atomic_path, check_output

    set_threads(args.threads)
    out = Path(args.output_dir or default_output(args.model, "detections"))
    files = find_images(args.images)
    for file in files:  # refused before any work
        check_output(out / f"{file.stem}.detections.png", args.force)
    detector = load(args)
    results = []

    def write(result, image) -> None:
        if result.detections is not None:
            d = result.detections
            keep = d.scores >= args.min_score
            result.detections = Detections(d.boxes[keep], d.scores[keep], d.labels[keep])
            target = check_output(out / f"{Path(result.file).stem}.detections.png", args.force)
            out.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                annotate(image, result.detections, detector.classes).save(tmp, format="PNG")
        results.append(result.to_dict(detector.classes))

    found = detect_files(detector, files, on_file=write)
    print(json.dumps(results, indent=1))
    failed = sum(r.detections is None for r in found)
    print(f"{len(found)} images, {failed} failed; annotated images in {out}", file=sys.stderr)
    return 1 if failed else 0


def add_proposals(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("proposals", help="Selective Search recall at IoU 0.5 and 0.7, proposals per image",
                       description="Measure how many ground-truth boxes the proposals cover.")
    add_data(p, None)
    p.add_argument("--setting", choices=SETTINGS, action="append",
                   help=f"{', '.join(SETTINGS)} (repeatable; default all)")
    p.add_argument("--max-side", type=positive_int, default=500)
    p.add_argument("--cache-dir", help="cache proposals here (the time then counts only new ones)")
    add_format(p)
    p.set_defaults(run=run_proposals)


def run_proposals(args: argparse.Namespace) -> int:
    from googlenet.detection.data import load_detection
    from googlenet.detection.proposals import ProposalCache, measure_recall

    data = load_detection(args.data, split_arg(args.split), args.bad_annotations)
    cache = ProposalCache(Path(args.cache_dir).expanduser() if args.cache_dir else None)
    rows = [measure_recall(data.samples, s, args.max_side, cache) for s in args.setting or SETTINGS]
    if args.format == "json":
        print(json.dumps([{"setting": r.setting, "images": r.images, "objects": r.objects,
                           "proposals_per_image": r.proposals_per_image,
                           "recall": {str(k): v for k, v in r.recall.items()},
                           "seconds_per_image": r.seconds_per_image} for r in rows], indent=1))
        return 0
    print("| setting | images | objects | proposals/image | recall@0.5 | recall@0.7 | s/image |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r.setting} | {r.images} | {r.objects} | {r.proposals_per_image:.0f} | "
              f"{100 * r.recall[0.5]:.1f}% | {100 * r.recall[0.7]:.1f}% | {r.seconds_per_image:.2f} |")
    return 0


COMMANDS = (add_detect,)
