"""What a caller of `train` or `resume` hears from a run, and how: the `Callback` hooks
(messages, epochs, batches), the callbacks the library offers (`PrintMessages`: the
CLI's messages; `ProgressBar`: a bar per epoch, a widget in Jupyter; `FollowFreeCores`:
threads that follow the free cores), and `Hooks`, a run's callbacks called in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TextIO

import torch
from tqdm.auto import tqdm

from googlenet.runtime.threads import AdaptiveThreads
from googlenet.training.engine import EpochResult


class Callback:
    """Hooks a caller of `train` or `resume` may override; every one is optional (rank 0 only)."""

    def on_message(self, message: str) -> None:
        """A line for the user: the run directory, the setting, each epoch's summary."""

    def on_epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        """Epoch `epoch` (0-based) starts with `done` of its `batches` already done."""

    def on_batch(self, result: EpochResult, mean_loss: float) -> None:
        """One more training batch done."""

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        """The epoch's metrics, as written to metrics.jsonl."""


class PrintMessages(Callback):
    """The run's messages on stdout, as the CLI prints them."""

    def on_message(self, message: str) -> None:
        print(message, flush=True)


class ProgressBar(Callback):
    """A bar per epoch: its batches, the mean loss and the speed so far. tqdm.auto draws it: a
    widget in Jupyter, text elsewhere (on `file`, default stderr); `disable`: none at all."""

    def __init__(self, file: TextIO | None = None, disable: bool = False) -> None:
        self.file, self.disable = file, disable
        self.bar: Any = None

    def on_epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        self.close()
        self.bar = tqdm(total=batches, initial=done, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                        disable=self.disable, leave=False, dynamic_ncols=True, file=self.file)

    def on_batch(self, result: EpochResult, mean_loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{mean_loss:.3f}", img_s=f"{result.images_per_second:.0f}",
                                 refresh=False)

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class FollowFreeCores(Callback):
    """torch's intra-op threads follow the cores other processes leave free, re-measured every
    `interval` seconds (runtime.threads: why, and the measurement). For one process per
    machine: under torchrun each rank is the others' competitor (torchrun sets one thread).
    Each change is said and handed to `record` (the loop writes it into metrics.jsonl): the
    weights then depend on the machine's load, and the run's records must show it."""

    def __init__(self, say: Callable[[str], None] = lambda _: None, interval: float = 5.0,
                 record: Callable[[int, str], None] = lambda threads, why: None) -> None:
        self.policy, self.say, self.record, self.started = AdaptiveThreads(interval), say, record, False

    def on_epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        if not self.started:  # the first epoch of this call: measure before the first step
            self.started = True
            before = torch.get_num_threads()
            threads = self.policy.start()
            if threads < self.policy.cores:
                self.say(f"{threads} of {self.policy.cores} cores free: other processes use the rest; "
                         "using " + ("1 thread" if threads == 1 else f"{threads} threads"))
            if threads != before:
                self.record(threads, "free cores at the start")

    def on_batch(self, result: EpochResult, mean_loss: float) -> None:
        change = self.policy.update()
        if change is not None:
            threads, load = change
            self.say(f"intra-op threads now {threads} (other processes used {load:.1f} of "
                     f"{self.policy.cores} cores over the last {self.policy.interval:g} s)")
            self.record(threads, f"other processes used {load:.1f} cores")


class Hooks(Callback):
    """The callbacks of one run, called in order; silent on ranks other than 0."""

    def __init__(self, callbacks: Sequence[Callback], enabled: bool) -> None:
        self.callbacks = list(callbacks) if enabled else []

    def on_message(self, message: str) -> None:
        for c in self.callbacks:
            c.on_message(message)

    def on_epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        for c in self.callbacks:
            c.on_epoch_start(epoch, epochs, batches, done)

    def on_batch(self, result: EpochResult, mean_loss: float) -> None:
        for c in self.callbacks:
            c.on_batch(result, mean_loss)

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        for c in self.callbacks:
            c.on_epoch_end(record)
