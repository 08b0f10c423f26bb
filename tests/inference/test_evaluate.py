"""Evaluation (1/10/144 crops, ensembles, Table 3) and prediction, through the library and the
CLI, on the model trained on the built-in digits (conftest.digits_run)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from googlenet.cli.main import main
from googlenet.data.config import DataConfig
from googlenet.data.digits import digits_splits
from googlenet.inference.evaluate import evaluate
from googlenet.inference.predictor import Predictor


@pytest.fixture(scope="module")
def trained(digits_run):
    return digits_run.run_dir, digits_run.last_metrics


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    """Two validation digits of each class as PNG files, in an ImageFolder tree."""
    root = tmp_path_factory.mktemp("digits")
    _, val = digits_splits()
    for label in range(10):
        indices = (val.labels == label).nonzero().flatten()[:2]
        for i in indices.tolist():
            folder = root / "val" / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(val.images[i].permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    return root


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_one_crop_reproduces_the_validation_accuracy_logged_by_training(trained, capsys):
    run, metrics = trained
    code, out, _ = run_cli(capsys, "evaluate", "-m", str(run / "last.pt"), "--workers", "0",
                           "--format", "json")
    record = json.loads(out)
    assert code == 0 and record["images"] == metrics["val_images"] == 359
    assert record["top1"] == pytest.approx(metrics["val_top1"], abs=1e-9)
    assert record["top5"] == pytest.approx(metrics["val_top5"], abs=1e-9)
    assert record["averaged_weights"] == [True]
    assert set(record["per_class"]) == {str(d) for d in range(10)}


def test_table_for_an_ensemble_with_1_10_and_144_crops(trained, digit_folder, capsys, tmp_path):
    run, _ = trained
    checkpoint = str(run / "last.pt")
    code, out, _ = run_cli(capsys, "evaluate", "-m", checkpoint, checkpoint, "--val-dir",
                           str(digit_folder / "val"), "--table", "--workers", "0",
                           "--format", "json", "--confusion-matrix", str(tmp_path / "cm.png"))
    record = json.loads(out)
    assert code == 0 and record["models"] == 2 and record["crops"] == 1 and record["images"] == 20
    rows = [(r["models"], r["crops"], r["cost"]) for r in record["table"]]
    assert rows == [(1, 1, 1), (1, 10, 10), (1, 144, 144), (2, 1, 2), (2, 10, 20), (2, 144, 288)]
    by_crops = {r["crops"]: r for r in record["table"] if r["models"] == 1}
    twins = {r["crops"]: r for r in record["table"] if r["models"] == 2}
    assert all(twins[c]["top1"] == by_crops[c]["top1"] for c in (1, 10, 144))  # same model twice
    assert record["best_model"] == checkpoint  # a tie: the first given
    assert [(r["name"], r["given"]) for r in record["ranking"]] == [(checkpoint, 1), (checkpoint, 2)]
    assert record["ranking"][0]["top1"] == by_crops[1]["top1"]
    assert (tmp_path / "cm.png").stat().st_size > 0
    code, out, _ = run_cli(capsys, "evaluate", "-m", checkpoint, "--val-dir", str(digit_folder / "val"),
                           "--table", "--workers", "0", "--format", "markdown")
    assert "| models | crops | cost | top-1 error | top-5 error | top-5 vs base |" in out
    assert "| 1 | 1 | 1 |" in out and "base" in out
    assert "best single model" not in out  # one model: no choice to report


def test_logit_averaging_and_144_crops(trained, digit_folder):
    run, _ = trained
    report = evaluate(Predictor.load(run / "last.pt"), DataConfig(path="", val_dir=str(digit_folder / "val")),
                      crops=144, average="logits", workers=0)
    assert report.main.crops == 144 and report.main.images == 20


def test_a_model_in_memory_evaluates_as_its_checkpoint(digits_run):
    """The library takes objects: the model `train` returned, no checkpoint and no optimizer."""
    loaded = Predictor.load(digits_run.run_dir / "last.pt")
    in_memory = Predictor.from_model(digits_run.model)  # its record: classes, preprocessing
    assert (in_memory.classes, in_memory.preprocessing) == (loaded.classes, loaded.preprocessing)
    a = evaluate(in_memory, "digits", workers=0, limit=60)
    b = evaluate(loaded, "digits", workers=0, limit=60)
    assert (a.main.top1, a.main.top5, a.main.images) == (b.main.top1, b.main.top5, b.main.images)
    assert a.main.top1 == pytest.approx(digits_run.last_metrics["val_top1"], abs=0.15)


def test_limit_keeps_every_class(trained, capsys):
    run, _ = trained
    code, out, _ = run_cli(capsys, "evaluate", "-m", str(run / "last.pt"), "--limit", "20",
                           "--workers", "0", "--format", "json")
    record = json.loads(out)
    assert code == 0 and record["images"] == 20
    confusion_rows = evaluate(Predictor.load(run), "digits", limit=20, workers=0).confusion.sum(1)
    assert (confusion_rows == 2).all()  # digits' validation split is not sorted by class


def test_predict_on_images_in_memory_equals_predict_on_their_files(trained, tmp_path):
    run, _ = trained
    predictor = Predictor.load(run)
    files = user_images(tmp_path / "mine")
    names = ["photo.jpg", "gray.png", "alpha.png"]
    from_files = predictor.predict_files([files[n] for n in names], top_k=3, workers=0)
    from_memory = predictor.predict([Image.open(files[n]) for n in names], top_k=3)
    assert [p.classes for p in from_memory] == [p.classes for p in from_files]
    for a, b in zip(from_memory, from_files):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
    # One call takes paths, PIL images and tensors mixed, in input order; a bad file is named.
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    tensor = torch.from_numpy(np.array(Image.open(files["photo.jpg"]).convert("RGB"))).permute(2, 0, 1)
    mixed = predictor.predict([files["photo.jpg"], Image.open(files["gray.png"]), tensor,
                               str(tmp_path / "broken.jpg"), tensor.float() / 255], top_k=3, workers=0)
    assert [p.file for p in mixed] == [str(files["photo.jpg"]), None, None,
                                       str(tmp_path / "broken.jpg"), None]
    assert [p.classes for p in mixed[:3]] == [from_files[0].classes, from_files[1].classes,
                                              from_files[0].classes]
    assert mixed[3].error and not mixed[3].classes
    assert mixed[4].probabilities == pytest.approx(mixed[2].probabilities, abs=1e-5)
    assert predictor.predict(files["photo.jpg"], top_k=3)[0].classes == from_files[0].classes


def test_classes_that_do_not_match_the_checkpoint_are_an_error(trained, tmp_path, capsys):
    run, _ = trained
    for name in ("cat", "dog"):
        (tmp_path / "val" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "val" / name / "a.png")
    code, _, err = run_cli(capsys, "evaluate", "-m", str(run / "last.pt"), "--val-dir",
                           str(tmp_path / "val"), "--workers", "0")
    assert code == 2 and "do not match" in err and "'cat'" in err


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    code, _, err = run_cli(capsys, "evaluate", "-m", str(tmp_path / "nope.pt"))
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli(capsys, "predict", str(tmp_path), "-m", str(tmp_path / "x.pt"))
    assert code == 2 and "does not exist" in err


def user_images(folder: Path) -> dict[str, Path]:
    """Every kind of image a user might have, and every kind of broken file."""
    folder.mkdir()
    base = Image.effect_mandelbrot((40, 30), (-2, -1.5, 1, 1.5), 40).convert("RGB")
    files = {}
    for name, image, fmt in [
        ("photo.jpg", base, "JPEG"), ("drawing.png", base, "PNG"), ("scan.bmp", base, "BMP"),
        ("web.webp", base, "WEBP"), ("anim.gif", base.convert("P"), "GIF"),
        ("gray.png", base.convert("L"), "PNG"), ("print.jpg", base.convert("CMYK"), "JPEG"),
        ("palette.png", base.convert("P"), "PNG"), ("alpha.png", base.convert("RGBA"), "PNG"),
        ("huge.png", Image.new("RGB", (300, 50)), "PNG"),
    ]:
        image.save(folder / name, fmt)
        files[name] = folder / name
    rotated = base.copy()
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    rotated.save(folder / "rotated.jpg", exif=exif)
    files["rotated.jpg"] = folder / "rotated.jpg"
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("hello, not a picture")
    (folder / "truncated.jpg").write_bytes((folder / "photo.jpg").read_bytes()[:200])
    return files


def test_predict_every_image_kind_and_a_clear_error_per_bad_file(trained, tmp_path, capsys,
                                                                 monkeypatch):
    run, _ = trained
    user_images(tmp_path / "mine")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # huge.png (15,000 pixels) is a bomb now
    code, out, err = run_cli(capsys, "predict", str(tmp_path / "mine"), str(tmp_path / "gone.png"),
                             "-m", str(run / "best.pt"), "--top-k", "3",
                             "--format", "json", "--workers", "0")
    records = {Path(r["file"]).name: r for r in json.loads(out)}
    assert code == 1 and "images/s" in err
    good = ["photo.jpg", "drawing.png", "scan.bmp", "web.webp", "anim.gif", "gray.png",
            "print.jpg", "palette.png", "alpha.png", "rotated.jpg"]
    for name in good:
        predictions = records[name]["predictions"]
        assert len(predictions) == 3 and predictions[0]["class"] in [str(d) for d in range(10)]
        assert predictions[0]["probability"] >= predictions[1]["probability"]
    errors = {name: records[name]["error"] for name in records if "error" in records[name]}
    assert set(errors) == {"empty.jpg", "text.jpg", "truncated.jpg", "huge.png", "gone.png"}
    assert "empty" in errors["empty.jpg"] and "decompression bomb" in errors["huge.png"]
    assert "not an image" in errors["text.jpg"] and "cannot read" in errors["gone.png"]


def test_predict_text_output_and_crops(trained, tmp_path, capsys):
    run, _ = trained
    files = user_images(tmp_path / "mine")
    code, out, _ = run_cli(capsys, "predict", str(files["photo.jpg"]), "-m",
                           str(run / "best.pt"), "--crops", "10", "--workers", "0")
    assert code == 0 and out.startswith(str(files["photo.jpg"]) + ": ")
    code, _, err = run_cli(capsys, "predict", str(tmp_path / "mine" / "nothing"), "-m",
                           str(run / "best.pt"))
    assert code == 1  # a missing file: its own error entry


def test_a_directory_without_images_is_an_error(trained, tmp_path, capsys):
    run, _ = trained
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "predict", str(tmp_path / "empty"), "-m",
                           str(run / "best.pt"))
    assert code == 2 and "no images in directory" in err


def test_exif_orientation_is_applied(tmp_path):
    from googlenet.data.images import decode_image

    image = Image.new("RGB", (40, 20))
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "r.jpg", exif=exif)
    assert decode_image((tmp_path / "r.jpg").read_bytes()).size == (20, 40)
