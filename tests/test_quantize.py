"""`googlenet quantize`: int8 QDQ per-channel with ONNX Runtime, measured against fp32 on held-out digits."""

import json

import onnx
import pytest
import torch
from PIL import Image
from test_export import make_checkpoint, one_thread  # noqa: F401 - the autouse fixture applies here too

from googlenet.cli import main
from googlenet.data.digits import digits_splits
from googlenet.onnx_backend import load_onnx_for_eval


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A bn model briefly trained on the digits (see make_checkpoint)."""
    torch.set_num_threads(1)
    return make_checkpoint(tmp_path_factory.mktemp("quantize") / "bn.pt", "bn", fit=True)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_int8_agrees_with_fp32_on_held_out_digits(fitted, tmp_path, capsys):
    output = tmp_path / "bn.int8.onnx"
    code, out, _ = run_cli(capsys, "quantize", fitted, "--calibration", "digits", "--images", "64",
                           "--eval-images", "200", "--output", output, "--format", "json")
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
    loaded = load_onnx_for_eval(output)  # the metadata survived quantization
    assert loaded.classes == [str(d) for d in range(10)] and loaded.data.input_size == 32
    assert (tmp_path / "bn.int8.fp32.onnx").is_file()


def test_an_exported_onnx_calibrated_on_a_plain_image_folder(fitted, tmp_path, capsys):
    fp32 = tmp_path / "paper.onnx"
    paper = make_checkpoint(tmp_path / "paper.pt", "paper")
    assert run_cli(capsys, "export", paper, "--output", fp32)[0] == 0
    folder = tmp_path / "images"
    folder.mkdir()
    train, _ = digits_splits()
    for i in range(6):
        Image.fromarray(train.images[i].permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    output = tmp_path / "paper.int8.onnx"
    code, out, _ = run_cli(capsys, "quantize", fp32, "--calibration", folder, "--images", "6",
                           "--eval-images", "20", "--output", output)
    assert code == 0 and "calibrated on 6 images of" in out and "agreement" in out
    ops = {node.op_type for node in onnx.load(str(output)).graph.node}
    assert "LRN" in ops and "QuantizeLinear" in ops  # LRN stays in float between quantized convs


def test_missing_model_and_data_are_clear_errors(fitted, tmp_path, capsys):
    code, _, err = run_cli(capsys, "quantize", tmp_path / "nope.onnx", "--calibration", "digits",
                           "--output", tmp_path / "x.onnx")
    assert code == 2 and "nope.onnx" in err
    code, _, err = run_cli(capsys, "quantize", fitted, "--calibration", tmp_path / "missing",
                           "--output", tmp_path / "x.onnx")
    assert code == 2 and "missing" in err


def test_one_class_folder_root_serves_as_calibration_and_held_out_data(tmp_path):
    from PIL import Image

    from googlenet.config import DataConfig
    from googlenet.quantize import held_out_data, training_split_images

    for name in ("cat", "dog"):
        (tmp_path / "test" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 40), (80 * i, 0, 0)).save(tmp_path / "test" / name / f"{i}.png")
    data = DataConfig(input_size=32)
    images = training_split_images(str(tmp_path / "test"), data, 4)
    assert images.shape == (4, 3, 32, 32)
    assert held_out_data(data, str(tmp_path / "test")).val_dir == str(tmp_path / "test")
    assert held_out_data(data, "digits").data == "digits"
