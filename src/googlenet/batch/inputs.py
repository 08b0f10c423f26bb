"""The files a batch job reads, listed once on the driver as an Arrow table of
(file, size, mtime_ns): local files, folders (searched as `googlenet predict` searches them),
glob patterns, listing files (.txt: one path a line; .parquet: a `file` column), and URIs of
the filesystems pyarrow supports (s3://, gs://, hdfs://), whose folders and globs are listed
through pyarrow.fs. Size and mtime are the resume key: a file changed since it was written is
predicted again.

Reading is bounded as in googlenet.data.images: regular files only, the size limit checked
before reading, the header checked before the rest."""

from __future__ import annotations

import fnmatch
import functools
import glob
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from googlenet.data.config import MB
from googlenet.data.images import HEADER_BYTES, check_header, check_size, is_image_file, read_file
from googlenet.errors import BadImage, DataError
from googlenet.inference.predictor import find_images

LISTING_SUFFIXES = (".txt", ".parquet")
GLOB_CHARACTERS = "*?["
Row = tuple[str, int, int]  # file, size in bytes (-1: unknown), mtime in ns (0: unknown)


def is_uri(text: str) -> bool:
    """s3://, gs://, file:// ...: read through pyarrow.fs (file:// too, the same code path)."""
    return "://" in text


def list_inputs(inputs: list[str]) -> Any:
    """Every file of `inputs`, in the order given (folders sorted), as a pyarrow Table with
    columns file, size, mtime_ns; DataError when there is none."""
    import pyarrow as pa

    rows = [row for text in inputs for row in expand(str(text), listing_allowed=True)]
    if not rows:
        raise DataError("no images given")
    files, sizes, mtimes = zip(*rows)
    return pa.table({"file": pa.array(files, pa.string()), "size": pa.array(sizes, pa.int64()),
                     "mtime_ns": pa.array(mtimes, pa.int64())})


def expand(text: str, listing_allowed: bool) -> Iterator[Row]:
    if listing_allowed and text.lower().endswith(LISTING_SUFFIXES) and is_file(text):
        for line in listed(text):
            yield from expand(line, listing_allowed=False)
    elif is_uri(text):
        yield from remote_rows(text)
    else:
        yield from local_rows(text)


def is_file(text: str) -> bool:
    if is_uri(text):
        from pyarrow import fs

        filesystem, path = filesystem_of(text)
        return filesystem.get_file_info(path).type == fs.FileType.File
    return os.path.isfile(text)


def listed(text: str) -> list[str]:
    """The paths a listing file names: .txt, one a line (blank lines and # comments skipped);
    .parquet, its `file` column (or `path`)."""
    if text.lower().endswith(".txt"):
        lines = (line.strip() for line in open_input(text).read().decode().splitlines())
        return [line for line in lines if line and not line.startswith("#")]
    import pyarrow.parquet as pq

    filesystem, path = filesystem_of(text) if is_uri(text) else (None, text)
    schema = pq.read_schema(path, filesystem=filesystem)
    column = next((name for name in ("file", "path") if name in schema.names), None)
    if column is None:
        raise DataError(f"{text} has no 'file' or 'path' column to list images from")
    return pq.read_table(path, columns=[column], filesystem=filesystem)[column].to_pylist()


def open_input(text: str) -> Any:
    if is_uri(text):
        filesystem, path = filesystem_of(text)
        return filesystem.open_input_stream(path)
    return open(text, "rb")


def local_rows(text: str) -> Iterator[Row]:
    if any(c in text for c in GLOB_CHARACTERS) and not os.path.exists(text):
        matches = sorted(m for m in glob.glob(text, recursive=True) if not os.path.isdir(m))
        if not matches:
            raise DataError(f"no files match {text}")
        paths = [Path(m) for m in matches]
    else:
        paths = find_images([text])  # a folder searched; a file as named, even a missing one
    for path in paths:
        try:
            info = os.stat(path)
            yield str(path), info.st_size, info.st_mtime_ns
        except OSError:  # missing, dangling link: read later, and named in an error row
            yield str(path), -1, 0


def remote_rows(uri: str) -> Iterator[Row]:
    """A remote file, folder (searched recursively for image suffixes) or glob pattern."""
    from pyarrow import fs

    scheme = uri.split("://")[0] + "://"
    pattern = None
    if any(c in uri for c in GLOB_CHARACTERS):
        pattern = uri
        uri = uri[:min(uri.index(c) for c in GLOB_CHARACTERS if c in uri)].rsplit("/", 1)[0]
    filesystem, path = filesystem_of(uri)
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.File and pattern is None:
        yield uri, info.size, info.mtime_ns or 0
        return
    if info.type != fs.FileType.Directory:
        if pattern is None:
            yield uri, -1, 0  # missing: named in an error row
            return
        raise DataError(f"no files match {pattern}")
    found = filesystem.get_file_info(fs.FileSelector(path, recursive=True))
    files = sorted((f for f in found if f.type == fs.FileType.File), key=lambda f: f.path)
    chosen = [f for f in files if (fnmatch.fnmatchcase(scheme + f.path, pattern) if pattern
                                   else is_image_file(f.base_name))]
    if not chosen:
        raise DataError(f"no images in {pattern or uri}")
    for f in chosen:
        yield scheme + f.path, f.size, f.mtime_ns or 0


@functools.lru_cache(maxsize=16)
def filesystem_of_root(root: str) -> Any:
    from pyarrow import fs

    return fs.FileSystem.from_uri(root)[0]


def filesystem_of(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path inside it); one filesystem object per bucket and process for
    object stores (an S3 client is slow to make)."""
    scheme, rest = uri.split("://", 1)
    if scheme in ("s3", "gs", "gcs"):
        return filesystem_of_root(f"{scheme}://{rest.split('/', 1)[0]}"), rest
    from pyarrow import fs

    return fs.FileSystem.from_uri(uri)


def read_any(file: str, max_bytes: int) -> bytes:
    """A local or remote image file's bytes, read boundedly (BadImage says why not)."""
    if not is_uri(file):
        return read_file(file, max_bytes)
    from pyarrow import fs

    filesystem, path = filesystem_of(file)
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.NotFound:
        raise BadImage("cannot read (No such file or directory)")
    if info.type == fs.FileType.Directory:
        raise BadImage("a directory, not a file")
    if info.type != fs.FileType.File:
        raise BadImage("not a regular file (a device, pipe or socket): not read")
    check_size(info.size, max_bytes)
    with filesystem.open_input_stream(path) as stream:
        head = stream.read(HEADER_BYTES)
        check_header(head)
        data = head + stream.read(max_bytes + 1 - len(head))
    check_size(len(data), max_bytes)
    return data


def max_bytes_of(max_image_mb: float) -> int:
    return int(max_image_mb * MB)
