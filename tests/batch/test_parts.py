"""The output folder of a batch job (googlenet.batch.parts): whole parts only, resume keys,
and no silent replacement."""

from __future__ import annotations

import pyarrow as pa
import pytest

from googlenet.batch.parts import parts, prepare_output, read_output, task_metadata, write_part
from googlenet.errors import DataError, OutputExists

TASK = {"task": "predict", "model": "m", "top_k": 5, "crops": 1}


def rows(files: list[str]) -> pa.Table:
    return pa.table({"file": files, "size": [1] * len(files), "mtime_ns": [2] * len(files),
                     "error": pa.array([None] * len(files), pa.string())}
                    ).replace_schema_metadata(task_metadata(TASK))


def test_resume_reads_the_keys_written_and_refuses_another_task(tmp_path):
    out = str(tmp_path / "out")
    assert prepare_output(out, TASK, resume=True, overwrite=False) is None  # nothing yet
    write_part(out, rows(["a.jpg", "b.jpg"]))
    write_part(out, rows(["c.jpg"]))
    (tmp_path / "out" / ".part-x.tmp-999999999.parquet").write_bytes(b"half a part")
    assert len(parts(out)) == 2
    done = prepare_output(out, TASK, resume=True, overwrite=False)
    assert sorted(done["file"].to_pylist()) == ["a.jpg", "b.jpg", "c.jpg"]
    assert not list((tmp_path / "out").glob(".*"))  # a killed writer's temporary file: gone
    with pytest.raises(DataError, match="output of another job"):
        prepare_output(out, {**TASK, "top_k": 3}, resume=True, overwrite=False)
    assert read_output(out).num_rows == 3


def test_an_output_with_parts_is_replaced_only_when_asked(tmp_path):
    out = str(tmp_path / "out")
    write_part(out, rows(["a.jpg"]))
    with pytest.raises(OutputExists, match="resume=True.*overwrite=True"):
        prepare_output(out, TASK, resume=False, overwrite=False)
    assert prepare_output(out, TASK, resume=False, overwrite=True) is None
    assert parts(out) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        prepare_output(str(tmp_path / "file"), TASK, resume=False, overwrite=False)
