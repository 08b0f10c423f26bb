"""`googlenet diagram`, `explain`, `visualize` and `dream`: pictures of the network, written as
PNG (SVG for the diagrams, when asked), their paths printed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from googlenet.arch.table import PAPER_INPUT_SIZE, PAPER_NUM_CLASSES, VARIANTS, get_variant
from googlenet.artifact.rundir import default_output
from googlenet.cli.args import add_force, add_model, add_renamed, add_threads, positive_int
from googlenet.visual.options import (
    DEFAULT_DREAM_LAYER,
    DEFAULT_EXPLAIN_LAYER,
    DEFAULT_FEATURE_MODULE,
    EXPLAIN_METHODS,
)


def add_diagram(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "diagram", help="the network (Figure 3) or one Inception module (Figure 2), from the table",
        description="Draw the whole network in the manner of the paper's Figure 3, or one Inception "
                    "module as Figure 2 (b) (--layer), beside the naive module of Figure 2 (a) "
                    "(--naive), each box with its filters, output size, params and multiply-adds "
                    "computed from the architecture table.")
    p.add_argument("--variant", choices=VARIANTS, default="paper")
    p.add_argument("--input-size", type=positive_int, default=PAPER_INPUT_SIZE)
    p.add_argument("--num-classes", type=positive_int, default=PAPER_NUM_CLASSES)
    p.add_argument("--layer", metavar="KEY", help="one Inception module (e.g. 4a)")
    add_renamed(p, "--module", "--layer", metavar="KEY")
    p.add_argument("--naive", action="store_true", help="with --layer: Figure 2 (a) beside it")
    p.add_argument("--output", metavar="FILE.svg|FILE.png",
                   help="default: outputs/googlenet-VARIANT.png, or outputs/inception-KEY.png "
                        "with --layer")
    add_force(p)
    p.set_defaults(run=run_diagram)


def run_diagram(args: argparse.Namespace) -> int:
    from googlenet.visual.diagram import module_figure, network_figure
    from googlenet.visual.pictures import check_picture_path, save_figure

    variant = get_variant(args.variant)
    if args.naive and not args.layer:
        raise ValueError("--naive draws beside one module: give --layer KEY (e.g. 4a)")
    default = (f"inception-{args.layer}{'-naive' if args.naive else ''}.png" if args.layer
               else f"googlenet-{args.variant}.png")
    output = check_picture_path(args.output or default_output(None, default), args.force)
    if args.layer:
        figure = module_figure(args.layer, variant, args.input_size, naive=args.naive)
    else:
        figure = network_figure(variant, args.input_size, args.num_classes)
    print(f"wrote {save_figure(figure, output, overwrite=True)}")
    return 0


def load_for_pictures(args: argparse.Namespace):
    """The model in eval mode on the CPU, and its artifact (classes, preprocessing)."""
    import torch

    from googlenet.artifact.build import model_from_artifact
    from googlenet.errors import ModelSourceError
    from googlenet.weights.sources import load_artifact

    if args.threads:
        torch.set_num_threads(args.threads)
    artifact = load_artifact(args.model, preprocess=args.preprocess)
    if artifact.state_dict is None:
        raise ModelSourceError(f"{args.model} is an exported graph: pictures of the network need its "
                               "weights (a run, a checkpoint, imagenet, bvlc or a weights file)")
    return model_from_artifact(artifact, aux_logits=False).eval(), artifact


def read_photo(path: str):
    from googlenet.data.images import BadImage, decode_image, read_file

    try:
        return decode_image(read_file(path))
    except BadImage as error:
        raise ValueError(f"{path}: {error}") from None


def output_in(folder: str | Path, name: str, force: bool) -> Path:
    from googlenet.runtime.files import check_output

    Path(folder).mkdir(parents=True, exist_ok=True)
    return check_output(Path(folder) / name, force)


def add_explain(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "explain", help="heat maps of where the network looked (Grad-CAM and others)",
        description="For each image, a heat map of the evidence for the predicted class (or --class) "
                    "over the view the model saw, on any trunk layer, with Captum.")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    add_model(p)
    p.add_argument("--class", dest="target", metavar="CLASS",
                   help="a class name or index (default: the predicted class)")
    p.add_argument("--layer", default=DEFAULT_EXPLAIN_LAYER,
                   help="a trunk layer: an Inception key (3a..5b) or a module name (conv3, maxpool3); "
                        "integrated-gradients works on the input pixels and ignores it")
    p.add_argument("--method", choices=EXPLAIN_METHODS, default="gradcam")
    p.add_argument("--input-size", type=positive_int, help="run at this size (default: the model's)")
    p.add_argument("--output-dir", metavar="DIR",
                   help="folder for the pictures (default: explanations/ in the model's run, "
                        "else in outputs/)")
    add_renamed(p, "--output", "--output-dir", metavar="DIR")
    add_force(p)
    add_threads(p)
    p.set_defaults(run=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    from googlenet.inference.predictor import find_images
    from googlenet.visual.explain import explain, explanation_figure
    from googlenet.visual.pictures import save_figure

    model, artifact = load_for_pictures(args)
    preprocessing = artifact.preprocessing
    if args.input_size:
        preprocessing = preprocessing.with_size(args.input_size)
    check_explain_options(model, artifact.classes, args)
    folder = args.output_dir or default_output(args.model, "explanations")
    failed = 0
    for path in find_images(args.images):
        try:
            photo = read_photo(str(path))
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
            continue
        layer = "input" if args.method == "integrated-gradients" else model.layer_name(args.layer)
        output = output_in(folder, f"{path.stem}-{args.method}-{layer}.png", args.force)
        result = explain(model, photo, artifact.classes, preprocessing, target=args.target,
                         layer=args.layer, method=args.method)
        written = save_figure(explanation_figure(result, path.name), output, overwrite=True)
        print(f"wrote {written}: {result.class_name} ({result.probability:.1%})")
    return 1 if failed else 0


def check_explain_options(model, classes: tuple[str, ...], args: argparse.Namespace) -> None:
    """Before any image: a layer and a class that exist (their errors name the choices)."""
    from googlenet.visual.explain import resolve_class

    model.layer_name(args.layer)
    if args.target is not None:
        resolve_class(args.target, classes, None)


def add_visualize(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("visualize", help="the first layer's filters, an Inception module's "
                              "feature maps, or the image that most excites a channel",
                              description="Pictures of what the network's layers hold.")
    actions = p.add_subparsers(dest="action", required=True, metavar="WHAT")
    filters = actions.add_parser("filters", help="conv1's 7x7 filters as an image grid")
    add_model(filters)
    filters.add_argument("--output", metavar="FILE.png|FILE.svg",
                         help="default: filters.png in the model's run, else in outputs/")
    add_force(filters)
    add_threads(filters)
    filters.set_defaults(run=run_filters)

    features = actions.add_parser("features", help="the feature maps of each branch of an Inception "
                                  "module for one image (1x1, 3x3, 5x5, pool projection)")
    features.add_argument("image", metavar="IMAGE")
    add_model(features)
    features.add_argument("--layer", default=DEFAULT_FEATURE_MODULE, metavar="KEY",
                          help="an Inception module (3a..5b)")
    add_renamed(features, "--module", "--layer", metavar="KEY")
    features.add_argument("--input-size", type=positive_int, help="default: the model's")
    features.add_argument("--output", metavar="FILE.png|FILE.svg",
                          help="default: IMAGE-KEY-features.png in the model's run, else in "
                               "outputs/")
    add_force(features)
    add_threads(features)
    features.set_defaults(run=run_feature_maps)

    channel = actions.add_parser("channel", help="the input that most excites one channel, by "
                                 "optimisation (Fourier parameterisation, decorrelated colour, "
                                 "jitter, scale and rotation)")
    add_model(channel)
    channel.add_argument("--layer", default=DEFAULT_FEATURE_MODULE,
                         help="a trunk layer (an Inception key or a module name)")
    channel.add_argument("--channel", type=int, default=0)
    channel.add_argument("--size", type=positive_int, default=128, help="pixels of the square image")
    channel.add_argument("--steps", type=positive_int, default=128)
    channel.add_argument("--seed", type=int, default=0)
    channel.add_argument("--output", metavar="FILE.png",
                         help="default: channel-LAYER-CHANNEL.png in the model's run, else in outputs/")
    add_force(channel)
    add_threads(channel)
    channel.set_defaults(run=run_channel)


def run_filters(args: argparse.Namespace) -> int:
    from googlenet.visual.filters import filters_figure
    from googlenet.visual.pictures import save_figure

    model, artifact = load_for_pictures(args)
    output = args.output or default_output(args.model, "filters.png")
    print(f"wrote {save_figure(filters_figure(model, artifact.source), output, args.force)}")
    return 0


def run_feature_maps(args: argparse.Namespace) -> int:
    from googlenet.visual.filters import branch_maps, features_figure
    from googlenet.visual.pictures import save_figure

    photo = read_photo(args.image)
    model, artifact = load_for_pictures(args)
    preprocessing = artifact.preprocessing
    if args.input_size:
        preprocessing = preprocessing.with_size(args.input_size)
    view, maps = branch_maps(model, photo, preprocessing, args.layer)
    name = model.layer_name(args.layer)
    figure = features_figure(view, maps, f"{Path(args.image).name}: {name}, branch by branch")
    output = args.output or default_output(args.model,
                                           f"{Path(args.image).stem}-{args.layer}-features.png")
    print(f"wrote {save_figure(figure, output, args.force)}")
    return 0


def run_channel(args: argparse.Namespace) -> int:
    import torch

    from googlenet.data.transforms import Normalize, to_float
    from googlenet.visual.optimize import ChannelSettings, channel_activation, channel_image
    from googlenet.visual.pictures import check_picture_path, save_image

    default = f"channel-{args.layer}-{args.channel}.png"
    output = check_picture_path(args.output or default_output(args.model, default), args.force,
                                (".png",))
    model, artifact = load_for_pictures(args)
    settings = ChannelSettings(size=args.size, steps=args.steps, seed=args.seed)
    image = channel_image(model, artifact.preprocessing, args.layer, args.channel, settings)
    name, normalise = model.layer_name(args.layer), Normalize(artifact.preprocessing)
    noise = torch.rand(8, 3, args.size, args.size, generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        reached = channel_activation(model, name, args.channel, normalise(to_float(image)[None])).item()
        baseline = channel_activation(model, name, args.channel, normalise(noise)).mean().item()
    print(f"wrote {save_image(image, output, args.force)}: {name} channel {args.channel}, mean "
          f"activation {reached:.3g} (random noise: {baseline:.3g})")
    if reached == 0:
        print("the channel stayed at 0 after its ReLU: try more --steps or another --seed",
              file=sys.stderr)
    return 0


def add_dream(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dream", help="DeepDream on a photograph",
                              description="DeepDream: gradient ascent on a layer's activations over "
                                          "several octaves of a photograph.")
    p.add_argument("image", metavar="IMAGE")
    add_model(p)
    p.add_argument("--layer", default=DEFAULT_DREAM_LAYER,
                   help="a trunk layer (an Inception key or a module name)")
    p.add_argument("--octaves", type=positive_int, default=3)
    p.add_argument("--steps", type=positive_int, default=10, help="per octave")
    p.add_argument("--max-side", type=positive_int, default=320,
                   help="the photograph is shrunk to this first (pixels)")
    p.add_argument("--output", metavar="FILE.png",
                   help="default: IMAGE-dream-LAYER.png in the model's run, else in outputs/")
    add_force(p)
    add_threads(p)
    p.set_defaults(run=run_dream)


def run_dream(args: argparse.Namespace) -> int:
    from googlenet.visual.optimize import DreamSettings, dream
    from googlenet.visual.pictures import check_picture_path, save_image

    default = f"{Path(args.image).stem}-dream-{args.layer}.png"
    output = check_picture_path(args.output or default_output(args.model, default), args.force,
                                (".png",))
    photo = read_photo(args.image)
    model, artifact = load_for_pictures(args)
    settings = DreamSettings(max_side=args.max_side, octaves=args.octaves, steps=args.steps)
    image = dream(model, photo, artifact.preprocessing, args.layer, settings)
    print(f"wrote {save_image(image, output, args.force)}: {model.layer_name(args.layer)}, "
          f"{args.octaves} octaves of {args.steps} steps, {image.width}x{image.height}")
    return 0


COMMANDS = (add_diagram, add_explain, add_visualize, add_dream)
