"""Checkpoints: written atomically, loaded safely (weights_only), holding all a resume needs."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from googlenet.artifact.files import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CLASSIFIER, check_kind
from googlenet.errors import ModelSourceError
from googlenet.runtime.files import atomic_path, safe_torch_load


def save_checkpoint(path: Path, state: dict[str, Any], kind: str = CLASSIFIER) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file.
    The free space is checked first; a full disk is a StorageError and the old file stays.
    `kind`: what the checkpoint holds (artifact.files.CHECKPOINT_KINDS)."""
    with atomic_path(path, fsync=True, needed=tensor_bytes(state) + (1 << 20)) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": kind, **state}, tmp)


def tensor_bytes(value: Any) -> int:
    """The bytes of every tensor inside nested dicts and lists: about a checkpoint's size."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v) for v in value)
    return 0


def load_checkpoint(path: str | Path, kind: str = CLASSIFIER) -> dict[str, Any]:
    """Load with torch.load(weights_only=True): a checkpoint file cannot run code. A checkpoint
    of another kind than `kind` is a ModelSourceError that says what it is."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    state = safe_torch_load(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ModelSourceError(f"{path} is not a googlenet checkpoint (no {CHECKPOINT_FORMAT!r} marker)")
    check_kind(state, str(path), kind)
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
