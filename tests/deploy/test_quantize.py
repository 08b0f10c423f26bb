"""`googlenet quantize`: int8 QDQ per-channel with ONNX Runtime, measured against fp32 on held-out digits."""

import json

import onnx
import pytest
from PIL import Image

from googlenet.artifact.files import save_safetensors
from googlenet.cli.main import main
from googlenet.data.digits import digits_splits
from googlenet.weights.sources import load_artifact

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fitted(digits_run):
    """The bn model trained on digits (conftest): its run directory."""
    return digits_run.run_dir


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_int8_agrees_with_fp32_on_held_out_digits(fitted, tmp_path, capsys):
    output = tmp_path / "bn.int8.onnx"
    code, out, _ = run_cli(capsys, "quantize", "-m", fitted, "--calibration", "digits", "--images", "64",
                           "--limit", "200", "--output", output, "--format", "json")
    record = json.loads(out)
    assert code == 0 and record["eval_images"] == 200 and record["calibration_images"] == 64
    assert "training images of digits" in record["calibrated_on"]  # apart from the validation split
    assert record["fp32_top1"] > 0.4, record  # the fitted model is well above chance (10%)
    assert record["agreement"] >= 0.9 and record["top1_drop"] <= 0.05, record
    proto = onnx.load(str(output))
    ops = {node.op_type for node in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    weight_scales = [t for t in proto.graph.initializer if t.name.endswith("_scale") and len(t.dims) == 1]
    assert weight_scales  # per-channel: one scale per output channel
    loaded = load_artifact(output)  # the metadata survived quantization
    assert loaded.classes == tuple(str(d) for d in range(10)) and loaded.preprocessing.input_size == 32
    assert [p.name for p in tmp_path.iterdir()] == ["bn.int8.onnx"]  # no fp32 file left behind
    code, _, err = run_cli(capsys, "quantize", "-m", fitted, "--calibration", "digits",
                           "--output", output)
    assert code == 2 and "exists; replace it with --force" in err


def test_an_exported_onnx_calibrated_on_a_plain_image_folder(odd_artifact, tmp_path, capsys):
    fp32 = tmp_path / "odd.onnx"
    source = save_safetensors(odd_artifact, tmp_path / "odd.safetensors")
    assert run_cli(capsys, "export", "-m", source, "--output", fp32)[0] == 0
    folder = tmp_path / "images"
    folder.mkdir()
    train, _ = digits_splits()
    for i in range(6):
        Image.fromarray(train.images[i].permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    for name in odd_artifact.classes:  # held-out data with the model's classes
        (tmp_path / "held" / name).mkdir(parents=True)
        for i in range(2):
            image = Image.fromarray(train.images[i].permute(1, 2, 0).numpy())
            image.save(tmp_path / "held" / name / f"{i}.png")
    output = tmp_path / "odd.int8.onnx"
    code, out, _ = run_cli(capsys, "quantize", "-m", fp32, "--calibration", folder, "--images", "6",
                           "--eval-data", tmp_path / "held", "--limit", "6", "--output", output)
    assert code == 0 and "calibrated on 6 images of" in out and "agreement" in out
    ops = {node.op_type for node in onnx.load(str(output)).graph.node}
    assert "QuantizeLinear" in ops
    assert ("Sqrt" in ops) == (odd_artifact.variant == "paper")  # LRN stays in float


def test_missing_model_and_data_are_clear_errors(fitted, tmp_path, capsys):
    code, _, err = run_cli(capsys, "quantize", "-m", tmp_path / "nope.onnx", "--calibration", "digits",
                           "--output", tmp_path / "x.onnx")
    assert code == 2 and "nope.onnx" in err
    code, _, err = run_cli(capsys, "quantize", "-m", fitted, "--calibration", tmp_path / "missing",
                           "--output", tmp_path / "x.onnx")
    assert code == 2 and "missing" in err


def test_one_class_folder_root_serves_as_calibration_and_held_out_data(tmp_path):
    from PIL import Image

    from googlenet.data.preprocessing import Preprocessing
    from googlenet.deploy.quantize import held_out_data, training_split_images

    for name in ("cat", "dog"):
        (tmp_path / "test" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 40), (80 * i, 0, 0)).save(tmp_path / "test" / name / f"{i}.png")
    images = training_split_images(str(tmp_path / "test"), Preprocessing(input_size=32), 4)
    assert images.shape == (4, 3, 32, 32)
    assert held_out_data(str(tmp_path / "test")).val_dir == str(tmp_path / "test")
    assert held_out_data("digits").path == "digits"
