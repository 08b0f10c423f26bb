"""The thread policy: use the cores that other processes leave free, and follow them."""

import subprocess
import sys
import time

import pytest

from googlenet.runtime.threads import (
    AdaptiveThreads,
    CpuSample,
    cpu_sample,
    free_cores,
    others_load,
    threads_for,
    usable_cores,
)


def test_threads_leave_the_cores_others_hold():
    assert threads_for(2, 0.0) == 2 and threads_for(2, 0.3) == 2  # background noise
    assert threads_for(2, 0.5) == 1  # half a core taken: one thread would wait for it
    assert threads_for(2, 0.67) == 1  # a busy process sharing 2 cores with our 2 threads
    assert threads_for(2, 1.0) == 1 and threads_for(2, 3.0) == 1  # always at least one
    assert threads_for(8, 2.9) == 5


def test_others_load_is_busy_time_minus_our_own():
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    start, end = CpuSample(0.0, 1000, 100), CpuSample(2.0, 1000 + 3 * ticks, 100 + ticks)
    assert others_load(start, end) == pytest.approx(1.0)  # 3 core-seconds busy, 1 ours, in 2 s
    assert others_load(end, end) == 0.0


@pytest.fixture
def busy_process():
    """One CPU-bound competitor, as in benchmarks/shared_cpu.py, on an otherwise quiet machine."""
    if cpu_sample() is None or usable_cores() < 2:
        pytest.skip("needs Linux /proc and 2 cores")
    if free_cores(window=0.5) < usable_cores():
        pytest.skip("other processes are already busy on this machine: no quiet baseline")
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.3)  # running
    yield process
    process.kill()
    process.wait()


def test_a_busy_competitor_takes_a_thread_and_gives_it_back(busy_process):
    import torch

    cores = usable_cores()
    before = torch.get_num_threads()
    try:
        assert free_cores(window=0.5) == cores - 1
        policy = AdaptiveThreads(interval=0.5)
        assert policy.start() == cores - 1 == torch.get_num_threads()
        busy_process.kill()
        busy_process.wait()
        time.sleep(0.6)  # a quiet interval
        assert policy.update() == (cores, pytest.approx(0.0, abs=0.3))
        assert torch.get_num_threads() == cores
        assert policy.update() is None  # within the interval: not measured again
    finally:
        torch.set_num_threads(before)


def test_serve_workers_share_the_measured_cores():
    from googlenet.cli.serve import threads_per_worker

    assert threads_per_worker(2, 2, measured=True) == 1  # 2 free cores, 2 processes
    assert threads_per_worker(2, 3, measured=False) == 3  # --threads 3: as given


def test_the_cli_takes_threads_given_then_omp_num_threads_then_measures(monkeypatch):
    import argparse

    import torch

    from googlenet.cli.main import apply_thread_policy

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        given = argparse.Namespace(command="evaluate", threads=2)
        apply_thread_policy(given)
        assert (given.threads, given.threads_measured, torch.get_num_threads()) == (2, False, 2)
        pinned = argparse.Namespace(command="evaluate", threads=None)
        apply_thread_policy(pinned)
        assert (pinned.threads, pinned.threads_measured, torch.get_num_threads()) == (1, False, 1)
        monkeypatch.delenv("OMP_NUM_THREADS")
        measured = argparse.Namespace(command="train", threads=None)
        apply_thread_policy(measured)
        assert measured.threads_measured and 1 <= measured.threads <= usable_cores()
        bench = argparse.Namespace(command="bench", threads=None)
        apply_thread_policy(bench)
        assert bench.threads is None  # the benchmark's own setting
    finally:
        torch.set_num_threads(before)
