"""The `googlenet` command: parse arguments, call the library, print. Nothing else.

Importing this module imports no torch: each command imports what it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from googlenet import __version__
from googlenet.cli import deploy, detect, inference, info, serve, train, visual
from googlenet.errors import GoogLeNetError

EXIT_USER_ERROR = 2
COMMANDS = (*info.COMMANDS[:2], *train.COMMANDS, *inference.COMMANDS, info.add_weights,
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (GoogLeNetError, ValueError, FileNotFoundError) as error:
        print(f"googlenet {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
