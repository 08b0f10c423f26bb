"""`googlenet bench --quick`: every row measured, with positive numbers and consistent ratios."""

import importlib.util
import json
import subprocess
import sys

INFERENCE = ["torchvision eager", "ours bn eager", "ours paper eager", "ours bn channels_last",
             "ours bn channels_last folded", "ORT fp32 ours bn", "ORT fp32 ours paper",
             "ORT fp32 torchvision", "ORT int8 ours bn", "ORT int8 ours paper", "ORT int8 torchvision",
             "ORT int8 torchvision, ORT's op set"]
OPENVINO = ["OpenVINO fp32 ours bn", "OpenVINO fp32 ours paper", "OpenVINO fp32 torchvision",
            "OpenVINO int8 ours bn", "OpenVINO int8 ours paper", "OpenVINO int8 torchvision"]
TRAINING = ["torchvision train NCHW fp32", "ours bn train NCHW fp32", "ours bn train channels_last fp32",
            "ours bn train channels_last bf16", "ours paper train channels_last fp32"]


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


def test_quick_leaves_out_torch_compile_whose_compilation_takes_minutes():
    from googlenet.deploy.bench import BenchConfig

    assert not BenchConfig.quick().compile and BenchConfig().compile
    assert BenchConfig.quick(compile=True).compile
