"""Progress of a long command on stderr: on a terminal, tqdm's bar with a total, a rate and the
time left; where stderr is a file (a log), one line at most every `interval` seconds (30, or
$GOOGLENET_PROGRESS_INTERVAL)."""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

INTERVAL_VARIABLE = "GOOGLENET_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0


def default_interval() -> float:
    """Seconds between two lines in a log: $GOOGLENET_PROGRESS_INTERVAL, else 30."""
    try:
        return max(0.0, float(os.environ.get(INTERVAL_VARIABLE, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


class Progress:
    def __init__(self, what: str, unit: str, *, enabled: bool = True, interval: float | None = None,
                 file: IO[str] | None = None) -> None:
        self.what, self.unit = what, unit
        self.interval = default_interval() if interval is None else interval
        self.file = file or sys.stderr
        self.enabled = enabled
        self.terminal = self.file.isatty()
        self.total: int | None = None
        self.done = 0
        self.base = 0  # report(): what the stage had done before this call's first report
        self.started = self.last_line = time.monotonic()
        self.bar: Any = None

    def start(self, total: int) -> None:
        self.total = total
        if self.enabled and self.terminal:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=self.unit, desc=self.what, file=self.file)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and not self.terminal and time.monotonic() - self.last_line >= self.interval:
            self.last_line = time.monotonic()
            print(self.line(), file=self.file, flush=True)

    def report(self, what: str, unit: str, done: int, total: int) -> None:
        """The hook of a library call in stages (`detect train`'s epochs, `quantize`'s passes):
        `done` of the `total` of stage `what` so far, in `unit`. A new stage starts a new bar,
        rate and clock, over what it has left to do (a resumed epoch: the batches not done); a
        stage done closes its bar, so that the command's next line starts below it."""
        if what != self.what or self.total is None:
            self.close()
            self.what, self.unit, self.done, self.base = what, unit, 0, done
            self.started = self.last_line = time.monotonic()
            self.start(total - done)
        if done - self.base > self.done:
            self.update(done - self.base - self.done)
        if done >= total:
            self.close()

    def write(self, line: str) -> None:
        """A line of the command's output (stdout) while a bar may be drawn: above the bar,
        which is drawn again below it."""
        if self.bar is not None:
            self.bar.write(line, file=sys.stdout)
        else:
            print(line)
        sys.stdout.flush()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        text = f"{self.what}: {self.done:,}"
        if self.total:
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            text += f"/{self.total:,} {self.unit} ({self.done / self.total:.0%})"
            text += f", {rate:.1f} {self.unit}/s, {clock(left)} left"
        else:
            text += f" {self.unit}, {rate:.1f} {self.unit}/s"
        return text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def clock(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
