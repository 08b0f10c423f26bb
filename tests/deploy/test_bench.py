"""`googlenet bench --quick`: every row measured, with positive numbers and consistent ratios."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from googlenet.deploy.bench import (
    EXPORTED_CASES,
    BenchConfig,
    BenchReport,
    BenchRow,
    Case,
    add_ratios,
    inference_cases,
    render_bench,
    report_dict,
    time_cases,
    training_cases,
)

INFERENCE = ["torchvision eager", "ours bn eager", "ours paper eager", "ours bn channels_last",
             "ours bn channels_last folded", "ORT fp32 ours bn", "ORT fp32 ours paper",
             "ORT fp32 torchvision", "ORT int8 ours bn", "ORT int8 ours paper", "ORT int8 torchvision",
             "ORT int8 torchvision, ORT's op set"]
OPENVINO = ["OpenVINO fp32 ours bn", "OpenVINO fp32 ours paper", "OpenVINO fp32 torchvision",
            "OpenVINO int8 ours bn", "OpenVINO int8 ours paper", "OpenVINO int8 torchvision"]
TRAINING = ["torchvision train NCHW fp32", "ours bn train NCHW fp32", "ours bn train channels_last fp32",
            "ours bn train channels_last bf16", "ours paper train channels_last fp32",
            "ours paper train channels_last bf16"]


@pytest.mark.slow  # a whole `bench --quick` (about a minute): the arithmetic is tested below
def test_quick_bench_reports_every_row(tmp_path):
    output = tmp_path / "bench.json"
    # In its own process, as users run it.
    # One thread: two spinning threads on a shared 2-core machine make timings erratic.
    done = subprocess.run([sys.executable, "-m", "googlenet", "bench", "--quick", "--no-compile",
                           "--threads", "1", "--input-size", "32", "--json", str(output)],
                          capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    assert "vs baseline" in out and "GFLOP/s" in out and "int8" in out
    report = json.loads(output.read_text())
    assert report["ceiling_gflops"] > 0 and report["int8_ceiling_gops"] > 0
    assert report["machine"]["threads"] == "1"
    rows = report["rows"]
    expected = INFERENCE + (OPENVINO if importlib.util.find_spec("openvino") else [])
    for batch in (1, 4):
        names = [r["name"] for r in rows if r["task"] == "inference" and r["batch"] == batch]
        assert names == expected
    int8 = [r for r in rows if " int8 " in r["name"]]
    assert int8 and all(r["precision"] == "int8" for r in int8)  # judged against the int8 ceiling
    assert [r["name"] for r in rows if r["task"] == "training"] == TRAINING
    for row in rows:
        assert row["images_per_second"] > 0 and row["ratio"] > 0 and row["ceiling_fraction"] > 0
        assert row["macs_per_image"] > 0 and row["latency_ms"] > 0
    baselines = [r for r in rows if r["name"] in ("torchvision eager", "torchvision train NCHW fp32")]
    assert all(abs(r["ratio"] - 1) < 1e-9 for r in baselines)


def test_each_row_is_a_ratio_to_its_baseline_and_a_share_of_its_precisions_ceiling():
    rows = [BenchRow("torchvision eager", "inference", 4, 0.2, 1000),
            BenchRow("ours bn eager", "inference", 4, 0.1, 1000),
            BenchRow("ORT int8 ours bn", "inference", 4, 0.05, 1000, precision="int8"),
            BenchRow("torchvision eager", "inference", 1, 0.1, 1000),
            BenchRow("ours bn eager", "inference", 1, 0.2, 1000),
            BenchRow("torchvision train NCHW fp32", "training", 4, 0.4, 3000)]
    add_ratios(rows, ceiling_gflops=1.0, int8_ceiling_gops=4.0)
    assert [r.ratio for r in rows] == [1.0, 2.0, 4.0, 1.0, 0.5, 1.0]
    assert rows[1].ceiling_fraction == pytest.approx(40 * 1000 * 2 / 1e9)  # 40 images/s x 2 ops
    assert rows[2].ceiling_fraction == pytest.approx(80 * 1000 * 2 / 4e9)  # against int8's ceiling
    machine = {"cpu": "x", "cpus": "2", "threads": "1", "torch": "t", "onnxruntime": "o",
               "openvino": "v"}
    text = render_bench(BenchReport(BenchConfig.quick(), machine, 1.0, rows, 4.0))
    assert "2.00x" in text and "4.00x" in text and "0.50x" in text and "x, 2 CPUs, 1 threads" in text


def test_quick_leaves_out_torch_compile_whose_compilation_takes_minutes():
    assert not BenchConfig.quick().compile and BenchConfig().compile
    assert BenchConfig.quick(compile=True).compile


def test_a_rows_precision_comes_from_its_case_not_its_name():
    def nothing():  # a runner that takes no time to speak of
        return lambda: None
    cases = [Case("baseline", "bn", nothing),
             Case("ours quantized", "bn", nothing, precision="int8", backend="onnxruntime"),
             Case("ORT int8 in name only", "bn", nothing, backend="onnxruntime")]
    rows = time_cases(cases, "inference", 2, lambda variant: 1000, BenchConfig.quick(warmup=0, repeats=1))
    assert [r.precision for r in rows] == ["fp32", "int8", "fp32"]
    add_ratios(rows, ceiling_gflops=1.0, int8_ceiling_gops=4.0)
    int8, fp32 = rows[1], rows[2]
    assert int8.ceiling_fraction == pytest.approx(int8.images_per_second * 1000 * 2 / 4e9)  # int8's ceiling
    assert fp32.ceiling_fraction == pytest.approx(fp32.images_per_second * 1000 * 2 / 1e9)  # fp32's
    machine = {"cpu": "x", "cpus": "2", "threads": "1", "torch": "t", "onnxruntime": "o", "openvino": "v"}
    report = report_dict(BenchReport(BenchConfig.quick(), machine, 1.0, rows, 4.0))
    assert [r["precision"] for r in report["rows"]] == ["fp32", "int8", "fp32"]


def test_the_cases_carry_their_precision_and_backend():
    paths = {case.file: Path("not-made") for case in EXPORTED_CASES}  # nothing built nor opened yet
    cases = inference_cases(BenchConfig.quick(), paths, batch=1)
    assert [c.name for c in cases] == INFERENCE + OPENVINO
    assert {c.name for c in cases if c.precision == "int8"} == {
        "ORT int8 ours bn", "ORT int8 ours paper", "ORT int8 torchvision",
        "ORT int8 torchvision, ORT's op set",
        "OpenVINO int8 ours bn", "OpenVINO int8 ours paper", "OpenVINO int8 torchvision"}
    assert [c.backend for c in cases] == ["torch"] * 5 + ["onnxruntime"] * 7 + ["openvino"] * 6
    without_openvino = {key: path for key, path in paths.items() if not key.startswith("ov-")}
    assert [c.name for c in inference_cases(BenchConfig.quick(), without_openvino, 1)] == INFERENCE
    training = training_cases(BenchConfig.quick())
    assert [c.name for c in training] == TRAINING
    assert [(c.precision, c.note) for c in training if c.precision != "fp32"] == [("bf16", "bf16 autocast")] * 2


def test_bench_task_training_times_only_the_training_rows(monkeypatch):
    """`googlenet bench --task training`: no export, no inference row."""
    import googlenet.deploy.bench as bench
    from googlenet.cli.main import main

    seen = {}

    def fake_run(config, log):
        seen["tasks"] = config.tasks
        return BenchReport(config, {"cpu": "x", "cpus": "2", "threads": "1", "torch": "t",
                                    "onnxruntime": "o", "openvino": "v"}, 1.0, [], 1.0)

    monkeypatch.setattr(bench, "run_bench", fake_run)
    assert main(["bench", "--quick", "--task", "training"]) == 0
    assert seen["tasks"] == ("training",)
    assert main(["bench", "--quick"]) == 0 and seen["tasks"] == ("inference", "training")
