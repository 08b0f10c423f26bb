"""`googlenet evaluate`, `predict` and `features`: parse, call the inference library, print."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from googlenet.arch.table import CROP_SCHEMES
from googlenet.cli.args import add_backend, add_force, add_format, add_model, add_runtime, positive_int
from googlenet.inference.options import AVERAGES, FEATURE_SUFFIXES, POOLS


def load_predictors(args: argparse.Namespace, sources: list[str]):
    import torch

    from googlenet.inference.predictor import Predictor

    if args.threads:
        torch.set_num_threads(args.threads)
    return [Predictor.load(source, backend=args.backend, device=args.device,
                           preprocess=args.preprocess, threads=args.threads) for source in sources]


def add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="top-1/top-5 with 1, 10 or 144 crops; ensembles; Table 3 reports",
        description="Evaluate a model (an ensemble when several) on a validation set, with the "
                    "paper's test-time crops (Sec. 7).")
    add_model(p, several=True)
    add_backend(p)
    p.add_argument("--data", help="digits, a folder or archive with val/ (or test/), or one folder of "
                   "class folders (its held-out share); default: the data the model was trained on")
    p.add_argument("--val-dir", help="a class-folder root evaluated whole (folder or archive)")
    p.add_argument("--crops", type=int, choices=CROP_SCHEMES, default=1)
    p.add_argument("--average", choices=AVERAGES, default="probs",
                   help="average softmax probabilities (the paper) or logits over crops/models")
    p.add_argument("--table", action="store_true",
                   help="every number of models 1..M with 1, 10 and 144 crops, like Table 3: "
                   "the 1-model rows are the model with the lowest 1-crop top-1 error, the k-model "
                   "rows the k lowest (Sec. 7), whatever the order of -m")
    p.add_argument("--confusion-matrix", metavar="PNG", help="write a confusion-matrix plot")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="evaluate about N images, spread evenly within every class")
    add_runtime(p)
    add_format(p)
    p.set_defaults(run=run_evaluate)


def eval_data(args: argparse.Namespace, predictor):
    from googlenet.data.config import DataConfig, missing_path

    if args.val_dir:
        data = DataConfig(path="", val_dir=args.val_dir)
    elif args.data:
        data = DataConfig(path=args.data)
    else:
        data = predictor.artifact.recorded_data()
        if data is None:
            raise ValueError(f"{predictor.name} records no data set: give --data or --val-dir")
        if (gone := missing_path(data)) is not None:
            raise ValueError(f"{predictor.name} was trained on {gone}, which no longer exists: "
                             "give --data or --val-dir")
    return dataclasses.replace(data, max_image_mb=args.max_image_mb)


def run_evaluate(args: argparse.Namespace) -> int:
    from googlenet.cli.progress import Progress
    from googlenet.inference.evaluate import evaluate
    from googlenet.inference.report import render_evaluation, save_confusion_matrix

    predictors = load_predictors(args, args.models)
    progress = Progress("evaluate", "img", enabled=args.format != "json")
    report = evaluate(predictors, eval_data(args, predictors[0]), crops=args.crops, table=args.table,
                      average=args.average, batch_size=args.batch_size, workers=args.workers,
                      limit=args.limit, on_start=progress.start,
                      on_batch=lambda n, rate: progress.update(n))
    progress.close()
    print(render_evaluation(report, args.format, args.table))
    if args.confusion_matrix:
        save_confusion_matrix(report, Path(args.confusion_matrix))
    return 0


def add_predict(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="top-k classes for image files or folders",
                              description="Predict the top-k classes of each image.")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    add_model(p)
    add_backend(p)
    p.add_argument("--top-k", type=positive_int, default=5)
    p.add_argument("--crops", type=int, choices=CROP_SCHEMES, default=1)
    add_runtime(p)
    add_format(p)
    p.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    import time

    from googlenet.cli.progress import Progress
    from googlenet.inference.report import render_predictions

    predictor = load_predictors(args, [args.model])[0]
    progress = Progress("predict", "img", enabled=args.format != "json")
    start = time.perf_counter()
    predictions = predictor.predict_files(args.images, top_k=args.top_k, crops=args.crops,
                                          batch_size=args.batch_size, workers=args.workers,
                                          max_image_mb=args.max_image_mb, on_start=progress.start,
                                          on_batch=lambda n, rate: progress.update(n))
    progress.close()
    rate = len(predictions) / (time.perf_counter() - start)
    print(render_predictions(predictions, args.format))
    failed = sum(p.error is not None for p in predictions)
    print(f"{len(predictions)} images, {failed} failed, {rate:.1f} images/s", file=sys.stderr)
    return 1 if failed else 0


def add_features(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("features", help="embeddings of image files (.npy or .parquet)",
                              description="The pooled 1024-d features (or a trunk layer's) of "
                              "each image, center crop, batched.")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    add_model(p)
    p.add_argument("--output", required=True, help="FILE.npy (names in FILE.files.txt) or FILE.parquet")
    p.add_argument("--layer", help="a trunk layer instead of the pooled features (e.g. inception4e, 4e)")
    p.add_argument("--pool", choices=POOLS, default="avg",
                   help="with --layer: average over space, or keep the C x H x W maps")
    add_force(p)
    add_runtime(p)
    p.set_defaults(run=run_extract_features, backend="torch")


def run_extract_features(args: argparse.Namespace) -> int:
    from googlenet.cli.progress import Progress
    from googlenet.inference.features import extract_features, files_list_path, save_features
    from googlenet.runtime.files import check_output

    if Path(args.output).suffix not in FEATURE_SUFFIXES:
        raise ValueError(f"--output must end in {' or '.join(FEATURE_SUFFIXES)}: {args.output}")
    check_output(args.output, args.force)
    predictor = load_predictors(args, [args.model])[0]
    progress = Progress("features", "img")
    features = extract_features(predictor, args.images, layer=args.layer, pool=args.pool,
                                batch_size=args.batch_size, workers=args.workers,
                                max_image_mb=args.max_image_mb, on_start=progress.start,
                                on_batch=lambda n, rate: progress.update(n))
    progress.close()
    save_features(features, Path(args.output))
    for file, error in features.errors.items():
        print(f"{file}: error: {error}", file=sys.stderr)
    print(f"wrote {args.output}: {len(features.files)} images, {features.layer}, shape "
          f"{tuple(features.values.shape)}" + (
              f" (names in {files_list_path(Path(args.output))})" if args.output.endswith(".npy") else ""))
    print(f"{len(features.errors)} failed, {features.images_per_second:.1f} images/s", file=sys.stderr)
    return 1 if features.errors else 0


COMMANDS = (add_evaluate, add_predict, add_features)
