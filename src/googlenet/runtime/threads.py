"""Intra-op threads on a CPU that other processes may be using.

PyTorch (OpenMP) and ONNX Runtime split each operator's work evenly over their threads and
wait for the slowest. When another process holds one of the cores, the thread on that core
runs only part of the time and every operator waits for it, while the waiting threads spin:
on 2 cores with one busy competitor, training ran at 0.3x of its quiet speed, below the fair
share of 0.5x (benchmarks/shared_cpu.py). Spinning less (OMP_WAIT_POLICY=PASSIVE) helped when
busy but cost 20% when quiet. Using only the cores that are free avoids both: the policy here
is threads = usable cores - the cores other processes are using (at least one), measured from
the kernel's CPU counters and re-measured while a run goes on, so that threads come back when
the competitor leaves. DataLoader workers are other processes too, so threads plus busy
workers never exceed the cores.

Linux only (/proc); elsewhere, and with an explicit thread count, nothing changes.

Training is different: convolution results depend on the thread count, so a run that follows
the free cores gives other weights on a busy machine than on a quiet one. A training run
therefore uses a fixed count by default (`training_threads`), records it, and a resume uses the
recorded count; following the free cores is a choice the run states in its log and records.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

HOLDS_A_CORE = 0.5  # another process using half a core or more counts as holding it


def training_threads(asked: int = 0) -> int:
    """The intra-op threads a training run uses when it does not follow the free cores: `asked`
    when positive, else OMP_NUM_THREADS when set (torchrun sets 1), else every usable core.
    Never the machine's current load: the same command gives the same weights, busy or quiet."""
    if asked > 0:
        return asked
    pinned = os.environ.get("OMP_NUM_THREADS", "")
    if pinned.isdigit() and int(pinned) > 0:
        return int(pinned)
    return usable_cores()


def threads_changed(before: int, after: int) -> str:
    """What a run says when it continues with another thread count than it recorded."""
    return (f"intra-op threads changed from {before} to {after}: the run continues, but not bit "
            "for bit as it would have")


def run_thread_count(asked: int, recorded: int | None) -> tuple[int, str | None]:
    """The threads a training run uses, and what to say about them: a new run's
    `training_threads(asked)`; a resumed run's `recorded` count, unless `asked` names another,
    which breaks bit-exactness and is said. One rule for classification and detection runs."""
    if recorded is None:
        return training_threads(asked), None
    if asked and asked != recorded:
        return asked, threads_changed(recorded, asked)
    return int(recorded), None


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. under taskset or a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class CpuSample:
    at: float  # time.monotonic()
    busy: int  # jiffies all CPUs spent running anything, from /proc/stat
    own: int  # jiffies this process spent running (all its threads), from /proc/self/stat


def cpu_sample() -> CpuSample | None:
    """The kernel's CPU counters now, or None where /proc is missing.

    Processes of lower priority (niced) count like any other: they do not get out of the way
    fast enough. Measured here, a `googlenet train` epoch ran at 382 images/s alone and at 106
    beside one nice-19 training process, which took about one core.
    """
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        own_fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    utime, stime = int(own_fields[11]), int(own_fields[12])  # fields 14 and 15 of proc(5)
    return CpuSample(time.monotonic(), user + nice + system + irq + softirq + steal, utime + stime)


def others_load(start: CpuSample, end: CpuSample) -> float:
    """Cores' worth of CPU that other processes used between two samples."""
    seconds = end.at - start.at
    if seconds <= 0:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return max(0.0, ((end.busy - start.busy) - (end.own - start.own)) / ticks / seconds)


def threads_for(cores: int, load: float) -> int:
    """Threads to use when other processes use `load` cores of `cores`."""
    held = int(load + (1 - HOLDS_A_CORE))
    return max(1, min(cores, cores - held))


def free_cores(window: float = 0.2) -> int:
    """Threads to use now: the usable cores minus those other processes are using, measured
    over `window` seconds (all usable cores where that cannot be measured)."""
    cores = usable_cores()
    start = cpu_sample()
    if start is None:
        return cores
    time.sleep(window)
    end = cpu_sample()
    return cores if end is None else threads_for(cores, others_load(start, end))


class AdaptiveThreads:
    """torch's intra-op threads following the free cores, re-measured every `interval`
    seconds from the time between two `update` calls (no sleeping: call it once a step)."""

    def __init__(self, interval: float = 5.0, cores: int | None = None) -> None:
        self.interval, self.cores = interval, cores or usable_cores()
        self.last = cpu_sample()
        self.threads = self.cores

    def start(self) -> int:
        """Set the threads from a short measurement now; returns them."""
        import torch

        self.threads = min(self.cores, free_cores())
        torch.set_num_threads(self.threads)
        self.last = cpu_sample()
        return self.threads

    def update(self) -> tuple[int, float] | None:
        """(threads, others' load) when the thread count changed, else None."""
        import torch

        if self.last is None or time.monotonic() - self.last.at < self.interval:
            return None
        now = cpu_sample()
        if now is None:
            return None
        load = others_load(self.last, now)
        self.last = now
        threads = threads_for(self.cores, load)
        if threads == self.threads:
            return None
        self.threads = threads
        torch.set_num_threads(threads)
        return threads, load
