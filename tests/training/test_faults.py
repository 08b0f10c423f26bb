"""Training under faults: exact resume on every rank, Ctrl-C under torchrun, one run per
directory, best.pt never behind last.pt, a full disk, contradictory settings."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from googlenet.artifact.files import save_safetensors
from googlenet.artifact.record import Artifact
from googlenet.cli.main import main
from googlenet.data.preprocessing import preset
from googlenet.errors import ConfigError, RunInUse
from googlenet.model.network import build_network
from googlenet.runtime.files import DirectoryLock
from googlenet.training import loop
from googlenet.training.checkpoint import load_checkpoint
from googlenet.training.config import load_recipe, with_overrides

SRC = str(Path(__file__).resolve().parents[2] / "src")


def config(run: Path, **overrides):
    values = {"output": str(run), "epochs": "1", "batch_size": "32", "quiet": True, "workers": "0",
              "variant": "bn"}
    return with_overrides(load_recipe("digits"), {**values, **overrides})


def torchrun(*args: str, timeout: float = 300) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "googlenet", "train", "--quiet", "--variant", "bn", "--batch-size", "32",
         "--workers", "0", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)  # its own process group: a timeout ends the workers too


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    return process.returncode, out, err


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)
    return {**{f"model.{k}": v for k, v in state["model"].items()},
            **{f"ema.{k}": v for k, v in state["ema"]["module"].items()}}


@pytest.mark.slow  # three torchrun jobs of two processes: about a minute
def test_two_processes_train_and_resume_exactly_on_every_rank(tmp_path):
    """An epoch on two processes straight, and the same epoch stopped after 9 steps and
    resumed: each rank draws its own dropout, so every rank's RNG state must be restored."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    code, out, err = finish(torchrun("--output-dir", str(straight), "--epochs", "1"))
    assert code == 0, err[-3000:]
    assert "2 process(es)" in out and out.count("training bn on") == 1  # only rank 0 logs
    records = (straight / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 1 and '"val_images": 359' in records[0]  # summed over both ranks
    assert load_checkpoint(straight / "last.pt")["progress"]["step"] == (1438 // 2) // 32
    code, _, err = finish(torchrun("--output-dir", str(split), "--epochs", "1", "--max-steps", "9"))
    assert code == 0, err[-3000:]
    assert len(load_checkpoint(split / "last.pt")["rng_per_rank"]) == 2
    code, _, err = finish(torchrun("--resume", str(split), "--max-steps", "0"))
    assert code == 0, err[-3000:]
    a, b = weights_of(straight / "last.pt"), weights_of(split / "last.pt")
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert different == []


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # the parent's PID
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow  # two torchrun jobs (about 40 s); Ctrl-C of one process: test_train.py
def test_ctrl_c_in_the_terminal_of_a_torchrun_job_saves_and_resumes(tmp_path):
    """Ctrl-C reaches each worker twice: from the terminal (where the workers share its
    process group) and forwarded by torchrun. Every rank must stop at the same step, with a
    checkpoint, as for SIGTERM; no rank may take the second SIGINT for "abort"."""
    import time

    run = tmp_path / "run"
    process = torchrun("--output-dir", str(run), "--epochs", "3")
    for line in process.stdout:  # the loop starts after this line
        if "training bn on" in line:
            break
    time.sleep(4)
    workers = children(process.pid)
    assert len(workers) == 2
    for worker in workers:  # the terminal's SIGINT
        os.kill(worker, signal.SIGINT)
    time.sleep(0.3)  # two signals at once would be handled as one
    os.kill(process.pid, signal.SIGINT)  # torchrun's, which it forwards to every worker
    code, out, err = finish(process)
    assert "stopping after this step" in err and "KeyboardInterrupt" not in err, err[-3000:]
    state = load_checkpoint(run / "last.pt")
    assert state["progress"]["batch_in_epoch"] > 0 or state["progress"]["epoch"] > 0, state["progress"]
    assert len(state["rng_per_rank"]) == 2
    # (resuming under torchrun, exactly: test_two_processes_train_and_resume_exactly_on_every_rank)


def test_one_run_per_directory(tmp_path, capsys):
    run = tmp_path / "run"
    with DirectoryLock(run):  # another process writing this run
        with pytest.raises(RunInUse, match=f"PID {os.getpid()}"):
            loop.train(config(run))
        assert main(["train", "--output-dir", str(run), "--epochs", "1", "--quiet"]) == 2
        assert "in use by another process" in capsys.readouterr().err
    assert not (run / "metrics.jsonl").exists()


def test_best_is_written_before_last(tmp_path, monkeypatch):
    written = []
    save = loop.save_run_checkpoint
    monkeypatch.setattr(loop, "save_run_checkpoint",
                        lambda run_dir, name, state: (written.append(name), save(run_dir, name, state)))
    loop.train(config(tmp_path / "run", batch_size="128"))
    assert written == ["best.pt", "last.pt"]  # a kill between them leaves last.pt behind, not ahead


def test_a_full_disk_stops_the_run_and_keeps_the_checkpoint(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    loop.train(config(run), max_steps=2)
    before = load_checkpoint(run / "last.pt")["progress"]
    usage = shutil.disk_usage(run)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1 << 20))
    code = main(["train", "--resume", str(run), "--max-steps", "3"])
    err = capsys.readouterr().err
    assert code == 2 and "no space left on device while writing" in err and "MB free" in err
    monkeypatch.undo()
    assert load_checkpoint(run / "last.pt")["progress"] == before


def test_stale_temporaries_are_cleaned_when_a_run_resumes(tmp_path):
    run = tmp_path / "run"
    loop.train(config(run), max_steps=2)
    stale = run / ".last.tmp-999999999.pt"  # above any PID Linux hands out
    stale.write_bytes(b"x" * 1000)
    loop.resume(run, max_steps=3)
    assert not stale.exists()


def test_a_resumed_run_keeps_its_network(tmp_path):
    run = tmp_path / "run"
    loop.train(config(run), max_steps=1)
    with pytest.raises(ConfigError, match="trained with model.variant = bn.*cannot become paper"):
        loop.resume(run, overrides={"variant": "paper"})


def test_weights_and_a_contradicting_variant_are_refused(tmp_path):
    torch.manual_seed(0)
    weights = save_safetensors(Artifact("paper", ("a", "b"), preset("imagenet"),
                                        state_dict=build_network("paper", num_classes=2).state_dict()),
                               tmp_path / "paper.safetensors")
    with pytest.raises(ConfigError, match="holds a 'paper' model, but the configuration asks for "
                                          "variant 'bn'"):
        loop.train(config(tmp_path / "run", weights=str(weights)))
