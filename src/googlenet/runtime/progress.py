"""The hook through which a long library call in stages reports how far it is: `detect train`'s
proposals and epochs, `quantize`'s calibration and held-out passes. The library calls it; the
CLI draws it (googlenet.cli.progress: a bar on a terminal, a line at intervals in a log)."""

from __future__ import annotations

from collections.abc import Callable

# (stage, unit, done, total): `done` of the stage's `total` so far, in `unit` (img, batch); a
# stage is first reported before its work starts (done 0, or what a resumed stage had done)
OnProgress = Callable[[str, str, int, int], None]


def no_progress(stage: str, unit: str, done: int, total: int) -> None:
    """The default hook: nothing reported."""
