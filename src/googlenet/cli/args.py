"""Command-line arguments shared by the `googlenet` subcommands: each defined once here.

Only light modules are imported (no torch), so `googlenet --help`, `summary` and `cost`
start fast; each command imports what it runs inside its `run` function.
"""

from __future__ import annotations

import argparse
import sys

from googlenet.arch.table import check_width
from googlenet.data.config import DEFAULT_MAX_IMAGE_MB
from googlenet.data.preprocessing import PRESETS
from googlenet.formatting import FORMATS
from googlenet.inference.options import BACKENDS

MODEL_HELP = ("a run directory, a checkpoint, imagenet or bvlc (published weights), a weights file "
              "(.safetensors, .pth, .caffemodel) or an exported model (.onnx, TorchScript)")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def width(text: str) -> float:
    """A network width: a factor on every filter count (arch.table.check_width)."""
    try:
        return check_width(float(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{error} (such as 1.25)") from None


def add_model(p: argparse.ArgumentParser, several: bool = False) -> None:
    """-m/--model: the one way every command names its model (several: an ensemble)."""
    if several:
        p.add_argument("-m", "--model", dest="models", action="extend", nargs="+", required=True,
                       metavar="MODEL", help=MODEL_HELP + "; several models form an ensemble")
    else:
        p.add_argument("-m", "--model", required=True, metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--preprocess", choices=tuple(PRESETS),
                   help="the input normalisation of a bare state dict, which does not record it "
                        "(imagenet: torchvision's mean/std; inception: (x - 0.5) / 0.5; caffe: "
                        "BVLC's 0-255 mean subtraction)")


def add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="auto: torch for weights, onnxruntime for .onnx, torchscript for TorchScript")


def add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per forward pass")
    p.add_argument("--workers", type=int, default=2, help="processes decoding images")
    add_device(p)
    add_threads(p)
    p.add_argument("--max-image-mb", type=float, default=DEFAULT_MAX_IMAGE_MB,
                   help="image files larger than this are refused unread (MB)")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (torch backend)")


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=positive_int,
                   help="intra-op threads (default: the cores that other processes leave free)")


def add_force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="replace the output file if it exists")


def add_format(p: argparse.ArgumentParser, formats: tuple[str, ...] = FORMATS) -> None:
    """--format: how the command prints its result (text, markdown or json), in every command."""
    p.add_argument("--format", choices=formats, default="text", help="output format")



def add_renamed(p: argparse.ArgumentParser, old: str, new: str, **kwargs) -> None:
    """`old`, a spelling of googlenet 0.2 that `new` replaces: still accepted for one release
    (hidden from --help), with a note on stderr saying what to write instead."""

    class Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None) -> None:
            print(f"note: {old} is now {new}; {old} will stop working in the next release",
                  file=sys.stderr)
            setattr(namespace, self.dest, values)

    dest = new.lstrip("-").replace("-", "_")
    p.add_argument(old, dest=kwargs.pop("dest", dest), action=Renamed, help=argparse.SUPPRESS,
                   **kwargs)
