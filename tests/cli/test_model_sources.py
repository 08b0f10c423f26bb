"""Every command that takes a model (-m, train -m) with every kind of model source:
valid ones work where they fit, and every other ends in one line on stderr naming the file,
exit status 2, and no traceback. The sources are made once for the module, small."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from detection_scenes import write_voc
from PIL import Image

from googlenet import build_model
from googlenet.cli.main import main
from googlenet.detection.train import DetectConfig, train_detection
from googlenet.training.config import load_recipe, with_overrides
from googlenet.training.loop import train


class RunsCode:
    def __reduce__(self):
        return (print, ("this pickle ran code",))


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """The data and every kind of model source, by name."""
    root = tmp_path_factory.mktemp("sources")
    voc = write_voc(root / "voc")
    Image.new("RGB", (40, 32), (200, 30, 30)).save(root / "photo.png")
    classify = root / "classify"
    train(with_overrides(load_recipe("digits"), {"output": str(classify), "quiet": True, "amp": "off"}),
          max_steps=1)
    frcnn = root / "frcnn"
    train_detection(DetectConfig(data=str(voc), method="faster-rcnn", split=None, output=str(frcnn),
                                 epochs=1, batch_size=2, image_size=64, threads=1), max_steps=1)
    main(["weights", "convert", "-m", str(classify), "--output", str(root / "w.safetensors")])
    torch.save(build_model("bn", num_classes=3, aux_logits=False).state_dict(), root / "bare.pth")
    (root / "empty").mkdir()
    (root / "truncated.pt").write_bytes((classify / "last.pt").read_bytes()[:5000])
    (root / "fake.onnx").write_bytes(bytes(range(256)) * 4)
    (root / "x.safetensors").write_text("not tensors\n")
    (root / "code.pt").write_bytes(pickle.dumps(RunsCode(), protocol=2))
    torch.save({"model": RunsCode()}, root / "code-zip.pt")
    return {"voc": voc, "photo": root / "photo.png", "classify": classify,
            "classify-checkpoint": classify / "last.pt", "frcnn": frcnn,
            "frcnn-checkpoint": frcnn / "last.pt",
            "safetensors": root / "w.safetensors", "bare": root / "bare.pth", "missing": root / "nothing.pt",
            "empty": root / "empty", "truncated": root / "truncated.pt", "fake-onnx": root / "fake.onnx",
            "text-safetensors": root / "x.safetensors", "code": root / "code.pt",
            "code-zip": root / "code-zip.pt"}


def commands(made: dict[str, Path], model: str, out: Path) -> dict[str, list[str]]:
    photo, voc = str(made["photo"]), str(made["voc"])
    return {
        "predict": ["predict", photo, "-m", model],
        "evaluate": ["evaluate", "-m", model, "--data", "digits", "--limit", "4"],
        "features": ["features", photo, "-m", model, "--output", str(out / "f.npy")],
        "export": ["export", "-m", model, "--output", str(out / "x.onnx")],
        "quantize": ["quantize", "-m", model, "--calibration", "digits", "--output", str(out / "q.onnx")],
        "serve": ["serve", "-m", model, "--port", "0"],
        "explain": ["explain", photo, "-m", model, "--output-dir", str(out / "explain")],
        "visualize filters": ["visualize", "filters", "-m", model, "--output", str(out / "f.png")],
        "visualize features": ["visualize", "features", photo, "-m", model, "--output", str(out / "m.png")],
        "visualize channel": ["visualize", "channel", "-m", model, "--size", "32", "--steps", "1",
                              "--output", str(out / "c.png")],
        "dream": ["dream", photo, "-m", model, "--octaves", "1", "--steps", "1", "--output",
                  str(out / "d.png")],
        "weights convert": ["weights", "convert", "-m", model, "--output", str(out / "w.safetensors")],
        "train": ["train", "-m", model, "--data", "digits", "--epochs", "1", "--max-steps", "1",
                  "--output-dir", str(out / "train"), "--quiet"],
        "detect train": ["detect", "train", "--data", voc, "--split", "all", "--method", "faster-rcnn",
                         "-m", model, "--max-steps", "1", "--image-size", "64", "--batch-size", "2",
                         "--output-dir", str(out / "detect")],
        "detect predict": ["detect", "predict", photo, "-m", model, "--output-dir", str(out / "boxes")],
        "detect evaluate": ["detect", "evaluate", "-m", model, "--data", voc, "--split", "all"],
    }


CLASSIFIER_COMMANDS = ("predict", "evaluate", "features", "export", "quantize", "serve", "explain",
                       "visualize filters", "visualize features", "visualize channel", "dream",
                       "weights convert", "train", "detect train")
HOSTILE = ("missing", "empty", "truncated", "fake-onnx", "text-safetensors", "code", "code-zip")
# (source, command) -> exit status, where a source works (0); everything else must be refused (2)
WORKS = {("frcnn", "detect predict"), ("frcnn", "detect evaluate"), ("frcnn-checkpoint", "detect predict"),
         ("classify", "predict"), ("classify", "features"), ("classify-checkpoint", "predict"),
         ("safetensors", "predict"), ("safetensors", "weights convert")}
CASES = [(source, command) for source in HOSTILE for command in (*CLASSIFIER_COMMANDS, "detect predict",
                                                                  "detect evaluate")]
CASES += [(source, command) for source in ("frcnn", "frcnn-checkpoint") for command in CLASSIFIER_COMMANDS]
CASES += [("classify", "detect predict"), ("classify", "detect evaluate"), ("bare", "predict"),
          ("safetensors", "detect evaluate"), *sorted(WORKS)]


@pytest.mark.parametrize(("source", "command"), CASES, ids=[f"{s}-{c}" for s, c in CASES])
def test_a_model_source_works_or_is_refused_in_one_line(made, source, command, tmp_path, capsys):
    model = str(made[source])
    status = main(commands(made, model, tmp_path)[command])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "this pickle ran code" not in out + err
    if (source, command) in WORKS:
        assert status == 0, err
        return
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"googlenet {command}: error: ") and Path(model).name in lines[0], lines[0]
    if source.startswith("frcnn"):
        assert "is a detection run (faster-rcnn on GoogLeNet): use googlenet detect predict" in lines[0]
