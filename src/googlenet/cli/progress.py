"""Progress of a long command on stderr: on a terminal, tqdm's bar with a total, a rate and the
time left; where stderr is a file (a log), one line at most every `interval` seconds."""

from __future__ import annotations

import sys
import time
from typing import IO, Any


class Progress:
    def __init__(self, what: str, unit: str, *, enabled: bool = True, interval: float = 30.0,
                 file: IO[str] | None = None) -> None:
        self.what, self.unit, self.interval = what, unit, interval
        self.file = file or sys.stderr
        self.enabled = enabled
        self.terminal = self.file.isatty()
        self.total: int | None = None
        self.done = 0
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


def clock(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
