"""The batch job's heavier promises (`make test-slow`): features and exported models give the
single-process answers; a killed actor costs a retry; a job killed half-way and resumed holds
every input once; a simulated two-node cluster runs the job through --address."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from batch_helpers import small_model, write_photos

from googlenet.batch.job import BatchJob, run_batch
from googlenet.batch.parts import parts, read_output
from googlenet.inference.features import extract_features
from googlenet.inference.predictor import Predictor

pytestmark = pytest.mark.slow
SRC = Path(__file__).resolve().parents[2] / "src"


def check_predictions(output: str, model: str, inputs: list[str], backend: str = "torch") -> None:
    """Every input exactly once, with the classes and probabilities (1e-5) of single-process
    predict on the same backend."""
    rows = read_output(output).to_pylist()
    by_file = {row["file"]: row for row in rows}
    expected = Predictor.load(model, backend=backend).predict_files(inputs, top_k=5, batch_size=7)
    assert len(rows) == len(by_file) == len(expected)
    for prediction in expected:
        row = by_file[prediction.file]
        assert (row["error"], row["classes"]) == (prediction.error, prediction.classes or None)
        if prediction.error is None:
            assert row["probabilities"] == pytest.approx(prediction.probabilities, abs=1e-5)


def test_features_and_exported_models_give_the_single_process_answers(ray_local, model_file, tmp_path):
    from googlenet.deploy.export import export_model, generated_images
    from googlenet.deploy.quantize import quantize_onnx
    from googlenet.weights.sources import load_artifact

    photos = write_photos(tmp_path / "photos", 30)
    inputs = [str(tmp_path / "photos")]
    job = BatchJob(model=str(model_file), inputs=tuple(inputs), output=str(tmp_path / "features"),
                   task="features", layer="4e", batch_size=8)
    assert run_batch(job, progress=False).images == 30
    table = read_output(job.output)
    expected = extract_features(Predictor.load(model_file, backend="torch"), inputs, layer="4e")
    got = dict(zip(table["file"].to_pylist(), table["features"].to_numpy(zero_copy_only=False)))
    assert sorted(got) == sorted(map(str, photos)) == sorted(expected.files)
    for file, values in zip(expected.files, expected.values):
        np.testing.assert_allclose(got[file], values, atol=1e-5)
    fp32 = export_model(load_artifact(model_file), "onnx", tmp_path / "m.onnx", check_count=2).path
    int8 = quantize_onnx(fp32, tmp_path / "m.int8.onnx", generated_images(16, 64))
    for model, backend in ((fp32, "onnxruntime"), (int8, "onnxruntime"), (int8, "openvino")):
        output = str(tmp_path / f"{Path(model).name}-{backend}")
        run_batch(BatchJob(model=str(model), inputs=tuple(inputs), output=output, backend=backend),
                  progress=False)
        check_predictions(output, str(model), inputs, backend)


def model_actor_pids() -> list[int]:
    pids = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if cmdline.startswith("ray::MapWorker(MapBatches(Classify))"):
            pids.append(process.pid)
    return pids


def test_an_actor_killed_mid_job_costs_a_retry_not_the_job(ray_local, tmp_path):
    model = small_model(tmp_path / "m224.safetensors", input_size=224)  # slow enough to kill
    write_photos(tmp_path / "photos", 60)
    job = BatchJob(model=str(model), inputs=(str(tmp_path / "photos"),), output=str(tmp_path / "out"),
                   batch_size=4, rows_per_file=4)
    results: list = []
    worker = threading.Thread(target=lambda: results.append(run_batch(job, progress=False)))
    worker.start()
    deadline = time.monotonic() + 300
    while not parts(job.output) and time.monotonic() < deadline:
        time.sleep(0.2)
    killed = model_actor_pids()
    assert killed and parts(job.output), "the job wrote nothing, or its actor was not found"
    written_before = len(read_output(job.output))
    os.kill(killed[0], signal.SIGKILL)
    worker.join(timeout=600)
    assert results, "the job did not finish"
    assert written_before < 60 and results[0].images == 60 and results[0].failed == 0
    assert killed[0] not in model_actor_pids()  # a new actor finished the job
    check_predictions(job.output, str(model), [str(tmp_path / "photos")])


def command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "googlenet", "batch", "predict", *argv]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


def test_a_job_killed_half_way_and_resumed_holds_every_input_once(tmp_path):
    model = small_model(tmp_path / "m224.safetensors", input_size=224)
    write_photos(tmp_path / "photos", 120)
    argv = command(str(tmp_path / "photos"), "-m", str(model), "--output", str(tmp_path / "out"),
                   "--batch-size", "4", "--rows-per-file", "8")
    job = subprocess.Popen(argv, env=environment(), start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(parts(str(tmp_path / "out"))) < 2 and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGKILL)  # the driver, its Ray instance and its workers
    job.wait()
    half = len(read_output(str(tmp_path / "out")))
    assert 0 < half < 120
    done = subprocess.run([*argv, "--resume"], env=environment(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{120 - half} images, 0 failed, {half} already there" in done.stdout
    check_predictions(str(tmp_path / "out"), str(model), [str(tmp_path / "photos")])


def test_a_two_node_cluster_runs_the_job_through_its_address(model_file, tmp_path):
    """Two nodes of 1 CPU each on this machine: each actor asks for 0.75 CPU, so the two actors
    can only run on different nodes, and the driver joins the cluster as a real one's would."""
    from ray.cluster_utils import Cluster

    write_photos(tmp_path / "photos", 40)
    os.environ["PYTHONPATH"] = environment()["PYTHONPATH"]  # the nodes' workers import googlenet
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        done = subprocess.run(command(str(tmp_path / "photos"), "-m", str(model_file), "--output",
                                      str(tmp_path / "out"), "--address", cluster.address,
                                      "--actors", "2", "--batch-size", "4"),
                              env=environment(), capture_output=True, text=True, timeout=600)
    finally:
        cluster.shutdown()
    assert done.returncode == 0, done.stderr[-3000:]
    assert "40 images, 0 failed" in done.stdout and "(2 actors x 1 threads)" in done.stdout
    check_predictions(str(tmp_path / "out"), str(model_file), [str(tmp_path / "photos")])
