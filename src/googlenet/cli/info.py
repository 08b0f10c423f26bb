"""`googlenet summary`, `cost` and `weights`: the table, its costs, the published weights."""

from __future__ import annotations

import argparse

from googlenet.arch.costs import PAPER_REDUCTION_EXAMPLE, ReductionComparison, module_comparison, network_cost
from googlenet.arch.table import (
    PAPER_INPUT_SIZE,
    PAPER_NUM_CLASSES,
    VARIANTS,
    get_variant,
    with_width,
)
from googlenet.cli.args import add_force, add_format, add_model, add_renamed, positive_int, width


def hwc(text: str) -> tuple[int, int, int]:
    """'28x28x192' -> (28, 28, 192)."""
    try:
        h, w, c = (positive_int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxWxC such as 28x28x192, got {text!r}") from None
    return h, w, c


def add_summary(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("summary", help="Table 1 computed from the model, beside the paper's",
                              description="Print the paper's Table 1 as computed from our table: "
                              "output sizes, params and multiply-adds, with the printed figures.")
    p.add_argument("--variant", choices=VARIANTS, default="paper")
    p.add_argument("--input-size", type=positive_int, default=PAPER_INPUT_SIZE)
    p.add_argument("--num-classes", type=positive_int, default=PAPER_NUM_CLASSES)
    p.add_argument("--width", type=width, default=1.0,
                   help="every filter count times this (Sec. 7's wider model); the paper's "
                        "figures are compared at 1 only")
    add_format(p)
    p.set_defaults(run=run_summary)


def run_summary(args: argparse.Namespace) -> int:
    from googlenet.arch.summary import render_summary

    network = network_cost(with_width(get_variant(args.variant), args.width), args.input_size,
                           args.num_classes)
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
    p.add_argument("--layer", metavar="KEY",
                   help="compare the naive and reduced Inception module KEY (e.g. 3a)")
    add_renamed(p, "--module", "--layer", metavar="KEY")
    p.add_argument("--variant", choices=VARIANTS, default="paper", help="for --layer")
    add_format(p)
    p.set_defaults(run=run_cost)


def run_cost(args: argparse.Namespace) -> int:
    from googlenet.arch.cost_report import render_module_comparison, render_reduction

    if args.layer:
        print(render_module_comparison(module_comparison(args.layer, get_variant(args.variant)),
                                       args.format))
    else:
        c = ReductionComparison(*args.input, kernel=args.kernel, out_channels=args.outputs,
                                reduce=args.reduce)
        print(render_reduction(c, args.format))
    return 0


def add_weights(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("weights", help="list published weights; convert weights to safetensors",
                              description="Published weights, and conversion of any model source "
                              "into our safetensors format (with its classes and preprocessing).")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the published weights and whether they are cached")
    listing.set_defaults(run=run_weights_list)
    convert = actions.add_parser("convert", help="MODEL -> FILE.safetensors")
    add_model(convert)
    convert.add_argument("--output", required=True, metavar="FILE.safetensors")
    add_force(convert)
    convert.set_defaults(run=run_weights_convert)


def run_weights_list(args: argparse.Namespace) -> int:
    from googlenet.weights.download import hub_checkpoint_dir
    from googlenet.weights.published import PUBLISHED

    for name, published in PUBLISHED.items():
        cached = hub_checkpoint_dir() / published.file.file_name
        print(f"{name}: variant {published.variant}; {published.description}\n"
              f"  {published.file.url}\n  cache: {cached} ({'present' if cached.is_file() else 'absent'})")
    return 0


def run_weights_convert(args: argparse.Namespace) -> int:
    from googlenet.artifact.files import save_safetensors
    from googlenet.runtime.files import check_output
    from googlenet.weights.sources import load_artifact

    if not args.output.endswith(".safetensors"):
        raise ValueError(f"--output must end in .safetensors: {args.output}")
    artifact = load_artifact(args.model, preprocess=args.preprocess)
    save_safetensors(artifact, check_output(args.output, args.force))
    print(f"{args.model} -> {args.output}: variant {artifact.variant}, {artifact.num_classes} classes, "
          f"{len(artifact.state_dict or {})} tensors")
    return 0


COMMANDS = (add_summary, add_cost, add_weights)
