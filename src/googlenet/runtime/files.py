"""Files: written atomically (readers see the old file or the complete new one, never half of
it), with free space checked first; read safely; a directory owned by one process at a time."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from googlenet.errors import ModelSourceError, OutputExists, RunInUse, StorageError

MB = 1 << 20
UMASK = os.umask(0o022)
os.umask(UMASK)  # read once: new files get the usual 0666 & ~umask, as open() gives them
TMP_PATTERN = re.compile(r"^\..+\.tmp-(\d+)(\.[^.]*)?$")  # what atomic_path names its files


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def check_free_space(path: Path, needed: int) -> None:
    """Refuse to start a write that cannot fit (with a 5% margin)."""
    free = shutil.disk_usage(path.parent).free
    if needed * 1.05 > free:
        raise StorageError(errno.ENOSPC, no_space(path, needed, free))


def no_space(path: Path, needed: int | None, free: int) -> str:
    need = f"needed {needed / MB:.1f} MB, " if needed else ""
    return f"no space left on device while writing {path} ({need}{free / MB:.1f} MB free)"


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC, or torch.save's report of a short write ("unexpected pos")."""
    return (isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)) or (
        isinstance(error, RuntimeError) and "unexpected pos" in str(error))


@contextmanager
def atomic_path(path: str | Path, fsync: bool = False, needed: int | None = None) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block succeeds,
    removed when it fails. The suffix is kept, for writers that choose a format by it.
    `needed` (bytes, an estimate): checked against the free space before writing. A full disk
    is a StorageError that names the file; the previous file stays."""
    path = Path(path)
    if needed is not None:
        check_free_space(path, needed)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~UMASK)  # some writers (safetensors) create their files 0600
        if fsync:  # survive a power cut, not only a crash (checkpoints)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:
        if is_disk_full(error):
            free = shutil.disk_usage(path.parent).free
            raise StorageError(errno.ENOSPC, no_space(path, needed, free)) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def check_output(path: str | Path, overwrite: bool) -> Path:
    """`path`, unless a file is there and replacing it was not asked for."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExists(f"{path} exists; replace it with overwrite=True, or choose another "
                           "output", setting="overwrite=True")
    return path


def write_atomically(path: str | Path, data: bytes) -> None:
    with atomic_path(path, needed=len(data)) as tmp:
        tmp.write_bytes(data)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files of writes whose process was killed (not a live one's)."""
    removed = []
    for entry in Path(folder).glob(".*.tmp-*"):
        match = TMP_PATTERN.match(entry.name)
        if match and entry.is_file() and not process_alive(int(match.group(1))):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


class DirectoryLock:
    """An exclusive lock on a directory (`.lock` inside it, flock), naming its holder's PID.

    The kernel releases a flock when its process dies, so a lock left by a crash is simply
    taken over: no stale-lock guessing."""

    NAME = ".lock"

    def __init__(self, folder: str | Path, what: str = "run directory") -> None:
        self.path = Path(folder) / self.NAME
        self.what = what
        self.file: IO[str] | None = None

    def acquire(self) -> DirectoryLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "unknown"
            file.close()
            raise RunInUse(f"{self.path.parent} is in use by another process (PID {holder}): one "
                           f"{self.what} is written by one process at a time; wait for it to end "
                           "or choose another directory") from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self.file = file
        return self

    def release(self) -> None:
        if self.file is not None:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_UN)
            self.file.close()
            self.file = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def safe_torch_load(path: Path, kind: str = "PyTorch file") -> Any:
    """torch.load(weights_only=True): the file cannot run code. Any failure is a
    ModelSourceError naming the file, never torch's advice to load it unsafely."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelSourceError(
            f"{path} is not a trusted {kind} of this project: it holds Python objects other than "
            "tensors and plain data, which could run code, and is not loaded") from None
    except Exception as error:  # zip, EOF and other errors for truncated or foreign files
        reason = str(error).split("\n")[0].split(". ")[0] or type(error).__name__
        raise ModelSourceError(f"{path} is not a readable {kind} ({reason})") from None
