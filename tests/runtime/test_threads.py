"""The thread policy: use the cores that other processes leave free, and follow them (inference,
and training that asks to); a training run's fixed count. No test assumes a quiet machine."""

import subprocess
import sys
import time

import pytest

from googlenet.runtime.threads import (
    AdaptiveThreads,
    CpuSample,
    cpu_sample,
    others_load,
    threads_for,
    training_threads,
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
    """One CPU-bound competitor, as in benchmarks/shared_cpu.py."""
    if cpu_sample() is None:
        pytest.skip("needs Linux /proc")
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.3)  # running
    yield process
    process.kill()
    process.wait()


def test_a_busy_competitor_is_measured(busy_process):
    """Whatever else the machine is doing, a process spinning on a core is at least most of a
    core of others' load (a lower bound only: the machine may be busier still)."""
    start = cpu_sample()
    time.sleep(0.5)
    assert others_load(start, cpu_sample()) >= 0.7


def test_the_policy_takes_a_thread_and_gives_it_back(monkeypatch):
    """The policy on simulated counters (no assumption about this machine's load): a competitor
    takes one of 4 cores, then leaves."""
    import torch

    from googlenet.runtime import threads

    ticks = __import__("os").sysconf("SC_CLK_TCK")
    clock = {"at": 0.0, "busy": 0, "own": 0}

    def advance(seconds: float, others: float, own: float) -> None:
        clock["at"] += seconds
        clock["busy"] += round((others + own) * seconds * ticks)
        clock["own"] += round(own * seconds * ticks)

    monkeypatch.setattr(threads, "cpu_sample", lambda: CpuSample(clock["at"], clock["busy"], clock["own"]))
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["at"])
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: advance(seconds, 1.0, 0.0))
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    before = torch.get_num_threads()
    try:
        policy = AdaptiveThreads(interval=5.0, cores=4)
        assert policy.start() == 3 == torch.get_num_threads()  # one core held by the competitor
        advance(2.0, 1.0, 3.0)
        assert policy.update() is None  # within the interval: not measured again
        advance(4.0, 0.0, 3.0)  # the competitor left
        assert policy.update() == (4, pytest.approx(1 / 3, abs=0.01))
        assert torch.get_num_threads() == 4
        advance(6.0, 0.0, 4.0)
        assert policy.update() is None  # no change
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
        measured = argparse.Namespace(command="evaluate", threads=None)
        apply_thread_policy(measured)
        assert measured.threads_measured and 1 <= measured.threads <= usable_cores()
        train = argparse.Namespace(command="train", threads=None)
        apply_thread_policy(train)
        assert train.threads is None  # the run's own, fixed and recorded (training.loop)
        bench = argparse.Namespace(command="bench", threads=None)
        apply_thread_policy(bench)
        assert bench.threads is None  # the benchmark's own setting
    finally:
        torch.set_num_threads(before)


def test_a_training_run_takes_its_count_from_the_asking_then_omp_num_threads_then_the_cores(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert training_threads(5) == 5 and training_threads(0) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert training_threads(0) == usable_cores()  # never the current load
