"""The batch job on a local Ray instance (2 CPUs, shared by the session): the answers of
single-process `predict`, error rows for files that cannot be used, and a resume that does only
what is left. The heavier checks (features, ONNX, a two-node cluster, a killed actor, a killed
and resumed job) are in test_job_slow.py."""

from __future__ import annotations

import os

import pyarrow.compute as pc
import pytest
from batch_helpers import write_photos

from googlenet.batch.job import BatchJob, run_batch
from googlenet.batch.parts import read_output
from googlenet.cli.main import main
from googlenet.inference.predictor import Predictor


def check_rows_match_predict(output: str, model_file, inputs: list[str], skip_mtime: int = -1) -> dict:
    """Every input once in the output (but rows of mtime `skip_mtime`), with single-process
    predict's classes (the same) and probabilities (within 1e-5), or its error; returns the rows
    by file."""
    rows = [row for row in read_output(output).to_pylist() if row["mtime_ns"] != skip_mtime]
    by_file = {row["file"]: row for row in rows}
    assert len(by_file) == len(rows)
    expected = Predictor.load(model_file, backend="torch").predict_files(inputs, top_k=3, batch_size=5)
    assert sorted(by_file) == sorted(p.file for p in expected)
    for prediction in expected:
        row = by_file[prediction.file]
        assert row["error"] == prediction.error
        if prediction.error is None:
            assert row["classes"] == prediction.classes
            assert row["probabilities"] == pytest.approx(prediction.probabilities, abs=1e-5)
    return by_file


def test_predictions_are_single_process_predicts_and_a_resume_does_the_rest(ray_local, model_file,
                                                                            tmp_path):
    photos = write_photos(tmp_path / "photos", 20)
    (tmp_path / "photos" / "broken.jpg").write_bytes(photos[0].read_bytes()[:300])
    (tmp_path / "photos" / "fake.jpg").write_bytes(b"<html>not an image</html>")
    inputs = [str(tmp_path / "photos"), str(tmp_path / "gone.jpg")]
    job = BatchJob(model=str(model_file), inputs=tuple(inputs), output=str(tmp_path / "out"),
                   top_k=3, batch_size=4, rows_per_file=8)
    first = run_batch(job, progress=False)
    assert (first.images, first.failed, first.skipped) == (23, 3, 0)
    assert dict(first.errors)[str(tmp_path / "gone.jpg")] == "cannot read (No such file or directory)"
    rows = check_rows_match_predict(job.output, model_file, inputs)
    assert rows[str(tmp_path / "photos/fake.jpg")]["error"] == "not an image (unrecognised format)"
    # new files, and one changed since: only those are done; the changed one gets a new row
    # (its key, path + size + mtime, is new) beside the old one
    write_photos(tmp_path / "photos", 3, start=20)
    os.utime(photos[5], ns=(1, 1))
    again = run_batch(BatchJob(**{**vars(job), "resume": True}), progress=False)
    assert (again.images, again.failed, again.skipped) == (4, 0, 22)
    table = read_output(job.output)
    assert sorted(table.filter(pc.equal(table["mtime_ns"], 1))["file"].to_pylist()) == [str(photos[5])]
    check_rows_match_predict(job.output, model_file, inputs, skip_mtime=1)


def test_the_command_refuses_to_mix_outputs_before_starting_ray(model_file, tmp_path, capsys):
    write_photos(tmp_path / "photos", 2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "part-0.parquet").write_bytes(b"")
    argv = ["batch", "predict", str(tmp_path / "photos"), "-m", str(model_file), "--output",
            str(tmp_path / "out")]
    assert main(argv) == 2
    assert "continue it with --resume, replace it with --force" in capsys.readouterr().err
    assert main(["batch", "features", str(tmp_path / "photos"), "-m", str(model_file), "--output",
                 str(tmp_path / "f"), "--layer", "9z"]) == 2
    assert "no layer '9z'" in capsys.readouterr().err
