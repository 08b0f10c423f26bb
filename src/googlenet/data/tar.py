"""Tar archives: uncompressed ones are read in place, compressed ones unpacked once into a cache.

Reading in place indexes the members once (name -> data offset and size) and
then reads each image with one pread; the file is opened lazily in each
process, so a reader survives being forked or pickled into DataLoader workers.
A compressed archive cannot be read by offset, so it is unpacked into
DataConfig.cache_dir, keyed by the archive's name, size and mtime.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any

from googlenet.data.config import DEFAULT_MAX_IMAGE_MB, MB
from googlenet.data.images import HEADER_BYTES, check_header, check_size
from googlenet.errors import DataError

# Magic numbers of gzip, bzip2, xz and zstd: tarfile would decompress them as streams.
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "googlenet"


def is_compressed(path: Path) -> bool:
    with open(path, "rb") as file:
        head = file.read(6)
    return head.startswith(COMPRESSED_MAGIC)


def clean_name(name: str) -> str:
    """Member names as paths relative to the archive root ("./a/b/" -> "a/b")."""
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def index_tar(path: Path) -> tuple[dict[str, tuple[int, int]], set[str]]:
    """Regular files -> (data offset, size), and the directories, of an uncompressed archive."""
    members: dict[str, tuple[int, int]] = {}
    dirs: set[str] = set()
    try:
        with tarfile.open(path, "r:") as archive:
            for member in archive:
                name = clean_name(member.name)
                if member.isfile() and not member.sparse:
                    members[name] = (member.offset_data, member.size)
                elif member.isdir() and name:
                    dirs.add(name)
    except tarfile.TarError as error:
        raise DataError(f"{path}: not a readable tar archive ({error})") from None
    return members, dirs


class TarReader:
    """Reads the members of an uncompressed tar archive by offset."""

    def __init__(self, path: Path, members: dict[str, tuple[int, int]],
                 max_bytes: int = DEFAULT_MAX_IMAGE_MB * MB) -> None:
        self.path = Path(path)
        self.members = members
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._pid: int | None = None

    def read(self, name: str) -> bytes:
        """A member's bytes: refused by its size, then by its first bytes, before the rest."""
        offset, size = self.members[name]
        check_size(size, self.max_bytes)
        check_header(os.pread(self._file(), min(size, HEADER_BYTES), offset))
        data = os.pread(self._file(), size, offset)
        if len(data) != size:
            raise OSError(f"archive ends {size - len(data)} bytes early")
        return data

    def where(self, name: str) -> str:
        return f"{self.path}:{name}"

    def _file(self) -> int:
        # A descriptor inherited through fork is shared with the parent; open our own.
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None, "_pid": None}

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)


def unpack_to_cache(path: Path, cache_dir: str | None) -> Path:
    """Unpack a compressed archive once; later calls (and other processes) reuse the folder.

    The archive is unpacked into a temporary folder beside the target and renamed
    into place, so an interrupted unpack never leaves a half-filled cache entry.
    """
    stat = path.stat()
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = root / f"{path.name}-{stat.st_size}-{stat.st_mtime_ns}"
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    try:
        with tarfile.open(path, "r:*") as archive:
            archive.extractall(temporary, filter="data")  # refuses absolute paths, .., devices
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise DataError(f"{path}: cannot unpack archive into {root} ({error})") from None
    try:
        os.rename(temporary, target)
    except OSError:
        shutil.rmtree(temporary, ignore_errors=True)
        if not target.is_dir():
            raise
        # another process finished unpacking first: use its folder
    return target
