"""A long command's progress: a bar on a terminal, periodic lines with a total, a rate and the
time left in a log file. Each library call announces its total before the first batch (a
call in stages: each stage's), and each command reports into a log (its stderr a file, the
interval at 0: a line per batch)."""

import io

from googlenet.cli.progress import Progress, clock


def test_a_log_file_gets_periodic_lines_with_total_rate_and_time_left():
    log = io.StringIO()
    progress = Progress("evaluate", "img", interval=0.0, file=log)
    progress.start(1000)
    progress.update(250)
    progress.update(250)
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("evaluate: 500/1,000 img (50%), ")
    assert " img/s, " in lines[-1] and lines[-1].endswith(" left")
    quiet = io.StringIO()
    rare = Progress("evaluate", "img", interval=3600.0, file=quiet)  # at most one line an hour
    rare.start(10)
    rare.update(5)
    assert quiet.getvalue() == ""
    assert clock(3725) == "1:02:05" and clock(65) == "1:05"


def test_evaluate_announces_the_total_of_its_passes(digits_run):
    from googlenet.inference.evaluate import evaluate
    from googlenet.inference.predictor import Predictor

    totals, seen = [], []
    report = evaluate(Predictor.load(digits_run.run_dir), "digits", limit=40, workers=0,
                      on_start=totals.append, on_batch=lambda n, rate: seen.append(n))
    assert totals == [sum(seen)] and report.main.images == sum(seen)


def test_the_interval_comes_from_the_environment(monkeypatch):
    from googlenet.cli.progress import DEFAULT_INTERVAL, INTERVAL_VARIABLE

    monkeypatch.setenv(INTERVAL_VARIABLE, "0.5")
    assert Progress("x", "img").interval == 0.5
    assert Progress("x", "img", interval=2.0).interval == 2.0  # a caller's own wins
    monkeypatch.setenv(INTERVAL_VARIABLE, "soon")
    assert Progress("x", "img").interval == DEFAULT_INTERVAL  # a bad value: the default
    monkeypatch.delenv(INTERVAL_VARIABLE)
    assert Progress("x", "img").interval == DEFAULT_INTERVAL == 30.0


def test_a_call_in_stages_gets_a_progress_per_stage():
    """report(stage, unit, done, total): a new stage restarts the count over what it has left
    (a resumed epoch: its batches not yet done)."""
    log = io.StringIO()
    progress = Progress("detect train", "batch", interval=0.0, file=log)
    for done in range(4):
        progress.report("train regions", "img", done, 3)
    progress.report("epoch 2/3", "batch", 5, 8)  # resumed after 5 of 8 batches
    progress.report("epoch 2/3", "batch", 6, 8)
    progress.report("epoch 2/3", "batch", 6, 8)  # nothing new: no line
    lines = log.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "train regions: 1/3 img", "train regions: 2/3 img", "train regions: 3/3 img", "epoch 2/3: 1/3 batch"]


def test_a_stage_done_closes_its_bar_and_lines_go_above_a_bar(capsys):
    terminal = io.StringIO()
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    progress = Progress("detect train", "batch", file=terminal)
    progress.report("epoch 1/1", "batch", 0, 2)
    assert progress.bar is not None
    progress.write("a message")
    assert capsys.readouterr().out == "a message\n"
    progress.report("epoch 1/1", "batch", 2, 2)
    assert progress.bar is None and "2/2" in terminal.getvalue()
    progress.write("epoch 1/1  loss 0.5")
    assert capsys.readouterr().out == "epoch 1/1  loss 0.5\n"


def logged(tmp_path, *argv: str) -> tuple[int, str, str]:
    """`googlenet ARGV` with stderr into a file, as in a batch job: (exit status, stdout, log)."""
    import os
    import subprocess
    import sys

    log = tmp_path / "stderr.log"
    env = {**os.environ, "GOOGLENET_PROGRESS_INTERVAL": "0", "OMP_NUM_THREADS": "1"}
    with open(log, "w") as err:
        result = subprocess.run([sys.executable, "-m", "googlenet", *argv], stdout=subprocess.PIPE,
                                stderr=err, text=True, env=env, timeout=300)
    return result.returncode, result.stdout, log.read_text()


def image_folder(root, count: int):
    from helpers import write_image

    for i in range(count):
        write_image(root / f"{i:02d}.png", label=i % 3, index=i)
    return root


def test_predict_and_features_announce_their_files_and_report_each_batch(digits_run, tmp_path):
    from googlenet.inference.features import extract_features
    from googlenet.inference.predictor import Predictor

    folder = image_folder(tmp_path / "photos", 5)
    (folder / "broken.png").write_bytes(b"not an image")  # counted too: a file done
    predictor = Predictor.load(digits_run.run_dir)
    for call in (predictor.predict_files, lambda files, **kw: extract_features(predictor, files, **kw)):
        totals, seen = [], []
        call([str(folder)], batch_size=4, on_start=totals.append, on_batch=lambda n, rate: seen.append(n))
        assert totals == [6] and seen == [4, 2]


def test_predict_and_features_report_into_a_log(digits_run, tmp_path):
    import json

    folder = str(image_folder(tmp_path / "photos", 12))
    model = ["-m", str(digits_run.run_dir), "--batch-size", "4", "--workers", "0"]
    code, out, log = logged(tmp_path, "predict", folder, *model)
    assert code == 0, log
    assert "predict: 4/12 img (33%)" in log and "predict: 12/12 img (100%)" in log
    assert " img/s, " in log and " left" in log
    code, out, log = logged(tmp_path, "predict", folder, *model, "--format", "json")
    assert code == 0 and len(json.loads(out)) == 12 and "predict:" not in log  # as evaluate: quiet
    code, out, log = logged(tmp_path, "features", folder, *model, "--output", str(tmp_path / "f.npy"))
    assert code == 0 and "features: 8/12 img (67%)" in log and "features: 12/12 img (100%)" in log


def test_quantize_calibration_reports_the_images_the_calibrator_has_run():
    import torch

    from googlenet.deploy.quantize import CALIBRATION, TensorReader

    calls = []
    reader = TensorReader("input", torch.zeros(40, 3, 8, 8), batch_size=16,
                          on_progress=lambda *call: calls.append(call))
    while reader.get_next() is not None:
        pass
    assert [done for _, _, done, _ in calls] == [0, 16, 32, 40]
    assert {(stage, unit, total) for stage, unit, _, total in calls} == {(CALIBRATION, "img", 40)}


def test_quantize_reports_calibration_and_held_out_passes_into_a_log(digits_run, tmp_path):
    code, out, log = logged(tmp_path, "quantize", "-m", str(digits_run.run_dir), "--calibration", "digits",
                            "--images", "24", "--limit", "40", "--output", str(tmp_path / "q.onnx"))
    assert code == 0, log
    assert "calibration: 16/24 img (67%)" in log and "calibration: 24/24 img (100%)" in log
    assert "held-out fp32: 40/40 img (100%)" in log and "held-out int8: 32/40 img (80%)" in log


def test_detection_training_reports_its_stages(tmp_path):
    """The library's hook: Faster R-CNN's images read, then each epoch's batches; R-CNN's
    Selective Search over the images, then the region classifier's epochs."""
    from detection_scenes import write_coco, write_voc

    from googlenet.detection.train import DetectConfig, train_detection

    stages: dict[str, list[tuple[int, int]]] = {}

    def hook(stage, unit, done, total):
        stages.setdefault(f"{stage} ({unit})", []).append((done, total))

    config = DetectConfig(data=str(write_coco(tmp_path / "coco")), method="faster-rcnn", split=None,
                          output=str(tmp_path / "frcnn"), epochs=1, batch_size=2, image_size=64, threads=1)
    train_detection(config, on_progress=hook)
    assert stages == {"reading images (img)": [(0, 3), (1, 3), (2, 3), (3, 3)],
                      "epoch 1/1 (batch)": [(0, 2), (1, 2), (2, 2)]}
    stages.clear()
    config = DetectConfig(data=str(write_voc(tmp_path / "voc")), output=str(tmp_path / "rcnn"), epochs=1,
                          input_size=32, proposals="opencv-fast", cache_dir=None, device="cpu", threads=1)
    train_detection(config, on_progress=hook)
    assert list(stages) == ["train regions (img)", "epoch 1/1 (batch)"]
    assert stages["train regions (img)"] == [(0, 2), (1, 2), (2, 2)]  # the train split's 2 images
    batches = stages["epoch 1/1 (batch)"]
    assert batches[0] == (0, batches[0][1]) and batches[-1] == (batches[0][1],) * 2


def test_detect_train_reports_batches_within_each_epoch_into_a_log(tmp_path):
    from detection_scenes import write_coco, write_voc

    code, out, log = logged(tmp_path, "detect", "train", "--data", str(write_coco(tmp_path / "coco")),
                            "--split", "all", "--method", "faster-rcnn", "--epochs", "2",
                            "--batch-size", "2", "--image-size", "64", "--threads", "1",
                            "--output-dir", str(tmp_path / "frcnn"))
    assert code == 0, log
    assert "reading images: 3/3 img (100%)" in log
    assert "epoch 1/2: 1/2 batch (50%)" in log and "epoch 2/2: 2/2 batch (100%)" in log
    assert "epoch 2/2  loss" in out  # the epochs' lines stay on stdout
    code, out, log = logged(tmp_path, "detect", "train", "--data", str(write_voc(tmp_path / "voc")),
                            "--input-size", "32", "--proposals", "opencv-fast", "--cache-dir",
                            str(tmp_path / "cache"), "--epochs", "1", "--threads", "1",
                            "--output-dir", str(tmp_path / "rcnn"))
    assert code == 0, log
    assert "train regions: 2/2 img (100%)" in log  # Selective Search over the training images
    assert "epoch 1/1: 1/" in log  # the region classifier's batches
