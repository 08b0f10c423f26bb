"""A run's intra-op thread count: fixed, recorded, kept on resume (runtime.threads says why)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from googlenet.runtime.distributed import DistInfo
from googlenet.runtime.threads import run_thread_count
from googlenet.training.callbacks import Hooks
from googlenet.training.config import TrainConfig


@dataclass
class RunThreads:
    """The intra-op threads of one call of `train` or `resume`: the count it starts with, whether it
    follows the free cores, and the changes not yet written into an epoch's record."""

    threads: int
    follow: bool
    changes: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def record(self, step: int, threads: int, why: str) -> None:
        self.threads = threads
        self.changes.append({"step": step, "threads": threads, "why": why})

    def drain(self) -> list[dict[str, Any]]:
        changes, self.changes = self.changes, []
        return changes


def run_threads(config: TrainConfig, state: dict[str, Any] | None, info: DistInfo, hooks: Hooks
                ) -> RunThreads:
    """A new run: `run.threads`, else OMP_NUM_THREADS, else every usable core, never the current
    load. A resumed run: the count its checkpoint recorded, unless `run.threads` now asks for
    another, which breaks bit-exactness and is said. Following the free cores (one process
    only) starts from that count and records each change."""
    follow = config.run.follow_free_cores and info.world_size == 1
    saved = state.get("threads") if state is not None else None
    threads, changed = run_thread_count(config.run.threads, saved)
    plan = RunThreads(threads, follow)
    if changed is not None:
        plan.record(state["progress"]["step"], threads, f"--threads {threads} on resume; the run had {saved}")
        hooks.on_message(changed)
    elif state is not None and saved is None:
        hooks.on_message(f"the checkpoint does not record its thread count; using {threads}")
    if follow:
        hooks.on_message("following the free cores: the weights depend on the machine's load "
                         "(each change is logged and recorded in metrics.jsonl)")
    return plan
