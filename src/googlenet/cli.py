"""The `googlenet` command: parse arguments, call the library, print. Nothing else."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from . import __version__
from .arch import PAPER_INPUT_SIZE, PAPER_NUM_CLASSES, VARIANTS, get_variant
from .cli_args import add_backend_flag, add_weights_flags, model_sources, positive_int, single_model_source
from .cli_deploy import DEPLOY_COMMANDS
from .config import (
    SECTION_TYPES,
    TrainConfig,
    field_owner,
    field_types,
    load_recipe,
    recipe_names,
    with_overrides,
)
from .cost_report import render_module_comparison, render_reduction
from .costs import PAPER_REDUCTION_EXAMPLE, ReductionComparison, module_comparison, network_cost
from .data import SCHEMES
from .device import resolve_device
from .engine import TrainingStopped
from .evaluate import AVERAGES, evaluate_checkpoints
from .evaluate_report import render_evaluation, save_confusion_matrix
from .features import OUTPUT_SUFFIXES, POOLS, extract_features, save_features
from .predict import predict_files, render_predictions
from .pretrained.download import hub_checkpoint_dir
from .pretrained.sources import load_weights, published_weights, save_safetensors
from .summary import render_summary
from .tables import FORMATS

EXIT_USER_ERROR = 2


def hwc(text: str) -> tuple[int, int, int]:
    """'28x28x192' -> (28, 28, 192)."""
    try:
        h, w, c = (positive_int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxWxC such as 28x28x192, got {text!r}")
    return h, w, c


def add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format")


def add_summary(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("summary", help="Table 1 computed from the model, beside the paper's",
                              description="Print the paper's Table 1 as computed from our table: "
                              "output sizes, params and multiply-adds, with the printed figures.")
    p.add_argument("--variant", choices=VARIANTS, default="paper")
    p.add_argument("--input-size", type=positive_int, default=PAPER_INPUT_SIZE)
    p.add_argument("--num-classes", type=positive_int, default=PAPER_NUM_CLASSES)
    add_format(p)
    p.set_defaults(run=run_summary)


def run_summary(args: argparse.Namespace) -> int:
    network = network_cost(get_variant(args.variant), args.input_size, args.num_classes)
    print(render_summary(network, args.format))
    return 0


def add_cost(subparsers: argparse._SubParsersAction) -> None:
    example = PAPER_REDUCTION_EXAMPLE
    p = subparsers.add_parser("cost", help="the paper's case for 1x1 reductions (Sec. 4)",
                              description="Multiplies of a k x k convolution with and without a "
                              "1x1 reduction, or of a naive against a reduced Inception module.")
    p.add_argument("--input", type=hwc, metavar="HxWxC",
                   default=(example.height, example.width, example.in_channels))
    p.add_argument("--kernel", type=positive_int, default=example.kernel)
    p.add_argument("--outputs", type=positive_int, default=example.out_channels)
    p.add_argument("--reduce", type=positive_int, default=example.reduce)
    p.add_argument("--module", metavar="KEY",
                   help="compare the naive and reduced Inception module KEY (e.g. 3a)")
    p.add_argument("--variant", choices=VARIANTS, default="paper", help="for --module")
    add_format(p)
    p.set_defaults(run=run_cost)


def run_cost(args: argparse.Namespace) -> int:
    if args.module:
        comparison = module_comparison(args.module, get_variant(args.variant))
        print(render_module_comparison(comparison, args.format))
    else:
        c = ReductionComparison(*args.input, kernel=args.kernel, out_channels=args.outputs,
                                reduce=args.reduce)
        print(render_reduction(c, args.format))
    return 0


def add_train(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train on digits (default), an image folder or a tar archive",
        description="Train GoogLeNet with a named recipe (YAML) whose every field can be "
                    "overridden by the flag of the same name.")
    p.add_argument("--recipe", help=f"a recipe name ({', '.join(recipe_names())}) or a YAML "
                   "file; default: finetune with --weights, else fast with data flags, else digits")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR (or from a checkpoint file) exactly")
    for section, cls in SECTION_TYPES.items():
        group = p.add_argument_group(f"{section} (recipe section {section!r})")
        for name, annotation in field_types(cls).items():
            flag = "--" + name.replace("_", "-")
            if annotation is bool:
                group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                                   default=argparse.SUPPRESS)
            else:
                group.add_argument(flag, dest=name, metavar=name.upper(),
                                   default=argparse.SUPPRESS)
    p.set_defaults(run=run_train)


def default_recipe(overrides: dict) -> str:
    if "weights" in overrides:
        return "finetune"
    return "fast" if overrides.keys() & {"data", "train_dir", "val_dir"} else "digits"


def run_train(args: argparse.Namespace) -> int:
    from .train import EXIT_INTERRUPTED, train

    owner = field_owner()
    overrides = {name: value for name, value in vars(args).items() if name in owner}
    def apply(config: TrainConfig) -> TrainConfig:
        return with_overrides(config, overrides)
    recipe = args.recipe or default_recipe(overrides)
    config = apply(load_recipe(recipe)) if not args.resume else TrainConfig()
    result = train(config, resume=args.resume, overrides=apply)
    return EXIT_INTERRUPTED if result.stop_reason == "signal" else 0


def add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="digits, an image folder or a tar archive (default: the "
                   "checkpoint's validation data)")
    p.add_argument("--train-dir", help=argparse.SUPPRESS)  # accepted for symmetry with train
    p.add_argument("--val-dir", help="the validation class-folder root (directory or archive)")
    p.add_argument("--cache-dir")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")


def add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="top-1/top-5 with 1, 10 or 144 crops; ensembles; Table 3 reports",
        description="Evaluate checkpoints (an ensemble when several) on a validation set, with "
                    "the paper's test-time crops (Sec. 7).")
    p.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT",
                   help="checkpoints or weights files (several: an ensemble)")
    add_weights_flags(p)
    add_backend_flag(p)
    p.add_argument("--crops", type=int, choices=SCHEMES, default=1)
    p.add_argument("--average", choices=AVERAGES, default="probs",
                   help="average softmax probabilities (the paper) or logits over crops/models")
    p.add_argument("--table", action="store_true",
                   help="every number of models 1..M with 1, 10 and 144 crops, like Table 3")
    p.add_argument("--confusion-matrix", metavar="PNG", help="write a confusion-matrix plot")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="evaluate N images spread evenly over the validation set")
    add_data_flags(p)
    add_format(p)
    p.set_defaults(run=run_evaluate)


def data_overrides(args: argparse.Namespace) -> dict:
    """--data / --val-dir / --cache-dir on top of the checkpoint's own data settings."""
    if not (args.data or args.val_dir):
        return {}
    overrides = {"train_dir": None, "val_dir": args.val_dir}
    if args.data:
        overrides["data"] = args.data
    if args.cache_dir:
        overrides["cache_dir"] = args.cache_dir
    return overrides


def run_evaluate(args: argparse.Namespace) -> int:
    crops = (args.crops,) + tuple(c for c in SCHEMES if c != args.crops) if args.table else (
        args.crops,)
    bar = tqdm(unit="img", file=sys.stderr, disable=args.format == "json" or not sys.stderr.isatty())
    report = evaluate_checkpoints(
        model_sources(args), variant=args.variant, data_overrides=data_overrides(args), crops=crops,
        table=args.table, average=args.average, batch_size=args.batch_size,
        workers=args.workers, device=resolve_device(args.device), limit=args.limit,
        on_batch=lambda n, rate: (bar.update(n), bar.set_postfix(img_s=f"{rate:.1f}")))
    bar.close()
    print(render_evaluation(report, args.format, args.table))
    if args.confusion_matrix:
        save_confusion_matrix(report, Path(args.confusion_matrix))
    return 0


def add_predict(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="top-k classes for image files or folders",
                              description="Predict the top-k classes of each image.")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--checkpoint", help="a checkpoint from googlenet train, or an exported .onnx "
                   "(or --weights)")
    add_weights_flags(p)
    add_backend_flag(p)
    p.add_argument("--top-k", type=positive_int, default=5)
    p.add_argument("--crops", type=int, choices=SCHEMES, default=1)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    add_format(p)
    p.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    predictions, rate = predict_files(args.images, single_model_source(args), variant=args.variant,
                                      top_k=args.top_k,
                                      crops=args.crops, batch_size=args.batch_size,
                                      workers=args.workers, device=resolve_device(args.device))
    print(render_predictions(predictions, args.format))
    failed = sum(p.error is not None for p in predictions)
    print(f"{len(predictions)} images, {failed} failed, {rate:.1f} images/s", file=sys.stderr)
    return 1 if failed else 0


def add_features(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("features", help="embeddings of image files (.npy or .parquet)",
                              description="The pooled 1024-d features (or a trunk layer's) of "
                              "each image, center crop, batched.")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--checkpoint", help="a checkpoint from googlenet train (or --weights)")
    add_weights_flags(p)
    p.add_argument("--output", required=True, help="FILE.npy (names in FILE.files.txt) or FILE.parquet")
    p.add_argument("--layer", help="a trunk layer instead of the pooled features (e.g. inception4e, 4e)")
    p.add_argument("--pool", choices=POOLS, default="avg",
                   help="with --layer: average over space, or keep the C x H x W maps")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.set_defaults(run=run_features)


def run_features(args: argparse.Namespace) -> int:
    source = single_model_source(args)
    if Path(args.output).suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"--output must end in {' or '.join(OUTPUT_SUFFIXES)}: {args.output}")
    features = extract_features(args.images, source, layer=args.layer, pool=args.pool,
                                variant=args.variant, batch_size=args.batch_size,
                                workers=args.workers, device=resolve_device(args.device))
    save_features(features, Path(args.output))
    for file, error in features.errors.items():
        print(f"{file}: error: {error}", file=sys.stderr)
    print(f"{len(features.files)} images -> {args.output} ({features.layer}, shape "
          f"{tuple(features.values.shape)}), {len(features.errors)} failed, "
          f"{features.images_per_second:.1f} images/s", file=sys.stderr)
    return 1 if features.errors else 0


def add_weights(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("weights", help="list published weights; convert weights to safetensors",
                              description="Published weights and conversion of any supported "
                              "source into our safetensors format (with variant, classes, preprocessing).")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the published weights and whether they are cached")
    listing.set_defaults(run=run_weights_list)
    convert = actions.add_parser("convert", help="SOURCE -> FILE.safetensors")
    convert.add_argument("source", metavar="SOURCE",
                         help="imagenet, bvlc, a checkpoint, a .pth, a .safetensors or a .caffemodel")
    convert.add_argument("--output", required=True)
    convert.add_argument("--variant", choices=VARIANTS, help="check that the weights are of this variant")
    convert.set_defaults(run=run_weights_convert)


def run_weights_list(args: argparse.Namespace) -> int:
    for name, published in published_weights().items():
        cached = hub_checkpoint_dir() / published.file.file_name
        print(f"{name}: variant {published.variant}; {published.description}\n"
              f"  {published.file.url}\n  cache: {cached} ({'present' if cached.is_file() else 'absent'})")
    return 0


def run_weights_convert(args: argparse.Namespace) -> int:
    if not args.output.endswith(".safetensors"):
        raise ValueError(f"--output must end in .safetensors: {args.output}")
    weights = load_weights(args.source, args.variant)
    save_safetensors(weights, Path(args.output))
    print(f"{args.source} -> {args.output}: variant {weights.variant}, {weights.num_classes} classes, "
          f"{len(weights.state_dict)} tensors")
    return 0


COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_summary, add_cost, add_train, add_evaluate, add_predict, add_features, add_weights,
    *DEPLOY_COMMANDS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="googlenet",
        description="GoogLeNet (Inception v1), Szegedy et al., CVPR 2015: the network as "
                    "published, its recipe and its test-time procedure.")
    parser.add_argument("--version", action="version", version=f"googlenet {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, TrainingStopped) as error:
        print(f"googlenet {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
