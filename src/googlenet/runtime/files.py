"""Write a file so that readers see the old file or the complete new one, never half of it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from googlenet.errors import ModelSourceError


@contextmanager
def atomic_path(path: str | Path, fsync: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block succeeds,
    removed when it fails. The suffix is kept, for writers that choose a format by it."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        if fsync:  # survive a power cut, not only a crash (checkpoints)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomically(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def safe_torch_load(path: Path, kind: str = "PyTorch file") -> Any:
    """torch.load(weights_only=True): the file cannot run code. Any failure is a
    ModelSourceError naming the file."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # the unpickler raises many types for foreign files
        raise ModelSourceError(f"{path} is not a readable {kind}: {error}") from None
