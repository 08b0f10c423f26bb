"""Atomic writes, safe loads, RNG capture."""

import pickle
import random

import numpy as np
import pytest
import torch

from googlenet.runtime.distributed import DistInfo
from googlenet.training.callbacks import Hooks
from googlenet.training.checkpoint import (
    all_finite,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from googlenet.training.run_state import restore_rng_of_rank


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(2)}, "classes": ["a", "b"], "epoch": 3})
    state = load_checkpoint(path)
    assert state["classes"] == ["a", "b"] and state["epoch"] == 3
    assert torch.equal(state["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_a_failed_save_leaves_the_old_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})
    with pytest.raises(Exception):
        save_checkpoint(path, {"epoch": 2, "bad": lambda: None})  # cannot be pickled
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_checkpoint_cannot_run_code(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": "googlenet-checkpoint", "x": Exploit()}, f, protocol=2)
    with pytest.raises(ValueError, match="not a trusted checkpoint of this project") as error:
        load_checkpoint(path)
    assert "weights_only" not in str(error.value)  # never the advice to run the file's code


def test_missing_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a googlenet checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "text.pt")


def test_rng_state_survives_a_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_checkpoint(tmp_path / "rng.pt", {"rng": capture_rng()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_a_checkpoint_with_rank_0s_rng_alone_still_resumes_its_stream():
    """Checkpoints written before every rank's RNG state was kept hold only "rng"."""
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    old = {"rng": capture_rng(), "config": {"run": {"seed": 0}}, "progress": {"step": 5}}
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_of_rank(old, DistInfo(), Hooks([], enabled=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_all_finite():
    assert all_finite({"w": torch.ones(3), "n": torch.tensor(5)})
    assert not all_finite({"w": torch.tensor([1.0, float("nan")])})
