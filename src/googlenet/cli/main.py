"""The `googlenet` command: parse arguments, call the library, print. Nothing else.

Importing this module imports no torch: each command imports what it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from googlenet import __version__
from googlenet.cli import batch, deploy, detect, inference, info, serve, train, visual
from googlenet.errors import GoogLeNetError
from googlenet.extras import require_extra

EXIT_USER_ERROR = 2
# torch's cpp_extension warns "No CUDA runtime is found" when imported (by NNCF, for one) on a
# machine with a CUDA toolkit and no GPU: nothing the user of a CPU command can act on.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
# A library setting named in an error message -> the flag that sets it on the command line.
FLAGS = {"overwrite": "--force", "preprocess": "--preprocess", "resume": "--resume"}
COMMANDS = (*info.COMMANDS[:2], *train.COMMANDS, *inference.COMMANDS, *batch.COMMANDS, info.add_weights,
            *deploy.COMMANDS, *serve.COMMANDS, *detect.COMMANDS, *visual.COMMANDS)


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


def apply_thread_policy(args: argparse.Namespace) -> None:
    """For a command that runs a model: `--threads N` as given, else OMP_NUM_THREADS when set
    (torchrun sets it), else the cores that other processes leave free, measured now
    (googlenet.runtime.threads says why). `bench` sets its own, as the benchmark it is, and
    `train` its run's: a fixed count it records, since its weights depend on it."""
    if getattr(args, "threads", "absent") == "absent" or args.command in ("bench", "train"):
        return
    from googlenet.runtime.threads import free_cores

    pinned = os.environ.get("OMP_NUM_THREADS", "")
    if args.threads is None and pinned.isdigit() and int(pinned) > 0:
        args.threads = int(pinned)
    args.threads_measured = args.threads is None
    if args.threads is None:
        args.threads = free_cores()
    import torch

    torch.set_num_threads(args.threads)


def needed_extras(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(extra, what needs it) for what `args` asks: checked before any work, so that a missing
    optional dependency is one line naming its `pip install`, never a traceback or a late failure
    (a detection run that trains for an hour and cannot score itself)."""
    needs = {"serve": ("serve", "googlenet serve"), "explain": ("explain", "googlenet explain"),
             "detect": ("detect", "googlenet detect"), "batch": ("ray", "googlenet batch")}
    extras = [needs[args.command]] if args.command in needs else []
    choices = (getattr(args, name, None) for name in ("backend", "engine", "to"))
    if "openvino" in choices or str(getattr(args, "output", "") or "").lower().endswith(".xml"):
        extras.append(("openvino", "OpenVINO"))
    if str(getattr(args, "output", "") or "").lower().endswith(".parquet"):
        extras.append(("parquet", "writing .parquet"))
    return extras


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for extra, purpose in needed_extras(args):
            require_extra(extra, purpose)
        apply_thread_policy(args)
        return args.run(args)
    except (GoogLeNetError, ValueError, FileNotFoundError) as error:
        print(f"googlenet {command_name(args)}: error: {cli_message(error)}", file=sys.stderr)
        return EXIT_USER_ERROR


def cli_message(error: Exception) -> str:
    """One line (a message may quote a file's own text) that names flags, not Python settings."""
    message = str(error)
    setting = getattr(error, "setting", None)
    if setting:  # overwrite=True -> --force; preprocess="a" | "b" -> --preprocess a|b
        name, _, value = setting.partition("=")
        values = "" if value == "True" else " " + value.replace('"', "").replace(" | ", "|")
        message = message.replace(setting, FLAGS[name] + values)
    for name, flag in FLAGS.items():  # other switches the message names (resume=True or overwrite=True)
        message = message.replace(f"{name}=True", flag)
    return " ".join(message.split())


def command_name(args: argparse.Namespace) -> str:
    """`detect predict`, `visualize filters`, `weights convert` or the command alone."""
    sub = getattr(args, "detect_command", None) or getattr(args, "action", None)
    return f"{args.command} {sub}" if sub else args.command


if __name__ == "__main__":
    sys.exit(main())
