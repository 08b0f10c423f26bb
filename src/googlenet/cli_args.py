"""Command-line arguments shared by the `googlenet` subcommands."""

from __future__ import annotations

import argparse

from .arch import VARIANTS

BACKENDS = ("torch", "onnxruntime")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_weights_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="SOURCE", help="imagenet, bvlc, or a weights file "
                   "(torchvision .pth, .safetensors, .caffemodel, a checkpoint)")
    p.add_argument("--variant", choices=VARIANTS, help="check that the weights are of this variant")


def add_backend_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=BACKENDS, help="torch for checkpoints and weights, "
                   "onnxruntime for a .onnx from googlenet export/quantize (default: by the file)")


def model_sources(args: argparse.Namespace) -> list[str]:
    sources = list(getattr(args, "checkpoints", None) or []) + (
        [args.checkpoint] if getattr(args, "checkpoint", None) else []) + (
        [args.weights] if args.weights else [])
    if not sources:
        raise ValueError("give a checkpoint or --weights")
    backend = getattr(args, "backend", None)
    for source in sources:
        onnx = str(source).endswith(".onnx")
        if backend == "onnxruntime" and not onnx:
            raise ValueError(f"--backend onnxruntime runs an exported .onnx model, not {source} "
                             "(make one with googlenet export)")
        if backend == "torch" and onnx:
            raise ValueError(f"{source} is an ONNX model: use --backend onnxruntime")
    return sources


def single_model_source(args: argparse.Namespace) -> str:
    """The one model a command runs: a checkpoint (or .onnx) or --weights, not both."""
    sources = model_sources(args)
    if len(sources) > 1:
        raise ValueError("give one model: a checkpoint or --weights, not both")
    return sources[0]
