"""The output of a batch job: a folder (local, or a URI pyarrow can write) of Parquet parts,
`part-<id>.parquet`, one row per input file. Each part appears whole or not at all: locally it is
written under a hidden temporary name and renamed; an object store publishes an upload only
when it completes. So a job killed at any point leaves complete parts only, and a resumed job
reads which files they hold (file, size, mtime_ns: the key) and predicts the rest."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from googlenet.batch.inputs import filesystem_of, is_uri
from googlenet.errors import DataError, OutputExists
from googlenet.runtime.files import atomic_path, remove_stale_temporaries

KEY = ("file", "size", "mtime_ns")
METADATA_KEY = b"googlenet.batch"
PART_PREFIX = "part-"


def parts(output: str) -> list[str]:
    """The complete parts in `output` (none when it does not exist), sorted."""
    from pyarrow import fs

    filesystem, root = location(output)
    info = filesystem.get_file_info(root)
    if info.type == fs.FileType.NotFound:
        return []
    if info.type != fs.FileType.Directory:
        raise DataError(f"{output} is a file: the output is a folder of Parquet parts")
    found = filesystem.get_file_info(fs.FileSelector(root))
    return sorted(f.path for f in found if f.base_name.startswith(PART_PREFIX)
                  and f.base_name.endswith(".parquet"))


def location(output: str) -> tuple[Any, str]:
    from pyarrow import fs

    if is_uri(output):
        return filesystem_of(output.rstrip("/"))
    return fs.LocalFileSystem(), str(Path(output).absolute())


def prepare_output(output: str, task: dict[str, Any], resume: bool, overwrite: bool) -> Any:
    """Get `output` ready for a job that does `task` (its description, as recorded in every part);
    returns the keys already written (a pyarrow Table of KEY) when resuming, else None.

    An output that holds parts is refused unless `resume` (of the same task) or `overwrite`
    (its parts are deleted) is asked."""
    import pyarrow.dataset as ds
    from pyarrow import fs

    filesystem, root = location(output)
    found = parts(output)
    if isinstance(filesystem, fs.LocalFileSystem) and Path(root).is_dir():
        remove_stale_temporaries(Path(root))  # parts of a killed job, never renamed
    if found and resume:
        check_same_task(output, filesystem, found[0], task)
        return ds.dataset(found, format="parquet", filesystem=filesystem).to_table(columns=list(KEY))
    if found and not overwrite:
        raise OutputExists(f"{output} holds the parts of an earlier job; continue it with resume=True, "
                           "replace it with overwrite=True, or choose another output",
                           setting="resume=True")
    for path in found:
        filesystem.delete_file(path)
    filesystem.create_dir(root, recursive=True)
    return None


def check_same_task(output: str, filesystem: Any, part: str, task: dict[str, Any]) -> None:
    import pyarrow.parquet as pq

    metadata = pq.read_schema(part, filesystem=filesystem).metadata or {}
    recorded = json.loads(metadata.get(METADATA_KEY, b"{}"))
    if recorded != task:
        raise DataError(f"{output} holds the output of another job ({describe(recorded)}), not "
                        f"of this one ({describe(task)}): resume it with the same settings, or "
                        "choose another output")


def describe(task: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in task.items()) or "unknown"


def task_metadata(task: dict[str, Any]) -> dict[bytes, bytes]:
    return {METADATA_KEY: json.dumps(task).encode()}


def write_part(output: str, table: Any) -> str:
    """`table` as a new part of `output`, whole or not at all; returns its path."""
    import pyarrow.parquet as pq
    from pyarrow import fs

    name = f"{PART_PREFIX}{uuid.uuid4().hex}.parquet"
    filesystem, root = location(output)
    if not isinstance(filesystem, fs.LocalFileSystem):
        path = f"{root}/{name}"
        with filesystem.open_output_stream(path) as stream:
            pq.write_table(table, stream)
        return path
    path = Path(root) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return str(path)


def read_output(output: str, columns: list[str] | None = None) -> Any:
    """Every complete part of `output` as one pyarrow Table."""
    import pyarrow.dataset as ds

    found = parts(output)
    if not found:
        raise DataError(f"{output} holds no parts")
    return ds.dataset(found, format="parquet", filesystem=location(output)[0]).to_table(columns=columns)
