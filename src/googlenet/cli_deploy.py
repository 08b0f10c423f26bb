"""The deployment subcommands of `googlenet`: export, quantize, bench."""

from __future__ import annotations

import argparse
from collections.abc import Callable

DEPLOY_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = ()
