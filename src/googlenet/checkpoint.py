"""Checkpoints: written atomically, loaded safely (weights_only), holding all a resume needs."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_path

FORMAT = "googlenet-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file."""
    with atomic_path(path, fsync=True) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)


def safe_torch_load(path: Path, kind: str = "PyTorch file") -> Any:
    """torch.load(weights_only=True): the file cannot run code. Any failure is a ValueError
    naming the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # the unpickler raises many types for foreign files
        raise ValueError(f"{path} is not a readable {kind}: {error}") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load with torch.load(weights_only=True): a checkpoint file cannot run code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    state = safe_torch_load(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a googlenet checkpoint (no {FORMAT!r} marker)")
    return state


def capture_rng() -> dict[str, Any]:
    version, keys, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(keys), gauss],
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def all_finite(state_dict: dict[str, torch.Tensor]) -> bool:
    return all(torch.isfinite(t).all() for t in state_dict.values() if t.dtype.is_floating_point)
