"""OpenVINO: export to IR with the artifact's metadata, the openvino backend, NNCF int8."""

import json
from dataclasses import replace

import pytest
import torch

from googlenet.artifact.build import model_from_artifact
from googlenet.artifact.files import save_safetensors
from googlenet.artifact.record import Artifact
from googlenet.cli.main import main
from googlenet.data.preprocessing import preset
from googlenet.model.network import build_network
from googlenet.weights.sources import load_artifact

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'googlenet[openvino]')")
pytestmark = pytest.mark.usefixtures("one_thread")


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ir_export_keeps_metadata_and_pytorchs_logits(odd_artifact, tmp_path, capsys):
    import xml.etree.ElementTree as ElementTree

    from googlenet.inference.backends import OpenVinoBackend

    source = save_safetensors(odd_artifact, tmp_path / "odd.safetensors")
    output = tmp_path / "odd.xml"
    code, out, _ = run_cli(capsys, "export", "-m", source, "--to", "openvino", "--output", output)
    assert code == 0 and "parity on 8 generated images" in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.bin", "odd.safetensors", "odd.xml"]
    loaded = load_artifact(output)
    assert (loaded.variant, loaded.classes, loaded.preprocessing) == (
        odd_artifact.variant, odd_artifact.classes, odd_artifact.preprocessing)
    layers = {layer.get("type") for layer in ElementTree.parse(output).getroot().iter("layer")}
    assert ("LRN" in layers) == (odd_artifact.variant == "paper")  # one fused LRN, not its ops
    backend = OpenVinoBackend(output, threads=1)
    reference = model_from_artifact(odd_artifact, aux_logits=False).eval()
    x = torch.randn(5, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(backend(x), reference(x), atol=1e-4, rtol=1e-4)
    code, _, err = run_cli(capsys, "export", "-m", source, "--to", "openvino", "--output", output)
    assert code == 2 and "exists; replace it with --force" in err


@pytest.mark.parametrize("size", [32, 57])
def test_ceil_mode_pools_export_at_small_inputs_with_pytorchs_numbers(size, tmp_path):
    """OpenVINO refuses a ceil-mode 3x3 pool over a 2x2 map; FloorModeMaxPool pads instead."""
    from googlenet.deploy.export import export_model

    torch.manual_seed(0)
    model = build_network("paper", 2, aux_logits=False).eval()
    artifact = Artifact("paper", ("a", "b"), replace(preset("imagenet"), input_size=size),
                        state_dict=model.state_dict())
    result = export_model(artifact, "openvino", tmp_path / "small.xml")
    assert result.ok, result


def test_openvino_backend_runs_onnx_and_ir_for_evaluate_and_predict(digits_run, tmp_path, capsys):
    onnx_path, ir_path = tmp_path / "bn.onnx", tmp_path / "bn.xml"
    assert run_cli(capsys, "export", "-m", digits_run.run_dir, "--output", onnx_path)[0] == 0
    assert run_cli(capsys, "export", "-m", digits_run.run_dir, "--to", "openvino",
                   "--output", ir_path)[0] == 0
    top1 = {}
    for backend, source in (("torch", digits_run.run_dir), ("openvino", onnx_path), ("auto", ir_path)):
        code, out, err = run_cli(capsys, "evaluate", "-m", source, "--backend", backend, "--limit", "40",
                                 "--workers", "0", "--format", "json")
        assert code == 0, err
        top1[backend] = json.loads(out)["top1"]
    assert top1["openvino"] == top1["torch"] == top1["auto"]
    from PIL import Image
    image = tmp_path / "digit.png"
    Image.new("RGB", (8, 8), (255, 255, 255)).save(image)
    code, out, _ = run_cli(capsys, "predict", image, "-m", ir_path, "--workers", "0", "--format", "json")
    assert code == 0 and len(json.loads(out)[0]["predictions"]) == 5
    code, _, err = run_cli(capsys, "evaluate", "-m", ir_path, "--backend", "onnxruntime")
    assert code == 2 and "runs on the openvino backend, not onnxruntime" in err


@pytest.mark.slow  # NNCF's calibration (about 16 s); ONNX Runtime's int8 agreement: test_quantize.py
def test_nncf_int8_agrees_with_fp32_on_held_out_digits(digits_run, tmp_path, capsys):
    output = tmp_path / "bn.int8.xml"
    code, out, err = run_cli(capsys, "quantize", "-m", digits_run.run_dir, "--engine", "openvino",
                             "--calibration", "digits", "--images", "64", "--limit", "200",
                             "--output", output, "--format", "json")
    assert code == 0, err
    record = json.loads(out)
    assert record["eval_images"] == 200 and record["fp32_top1"] > 0.4, record
    assert record["agreement"] >= 0.9 and record["top1_drop"] <= 0.05, record
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bn.int8.bin", "bn.int8.xml"]  # no fp32 left
    assert "FakeQuantize" in output.read_text()  # int8 layers, as NNCF writes them
    loaded = load_artifact(output)
    assert loaded.classes == tuple(str(d) for d in range(10)) and loaded.preprocessing.input_size == 32
    code, _, err = run_cli(capsys, "quantize", "-m", digits_run.run_dir, "--engine", "openvino",
                           "--calibration", "digits", "--output", tmp_path / "x.onnx")
    assert code == 2 and "the openvino engine writes a .xml file" in err


def test_nncf_calibration_reports_the_images_it_takes(digits_run, tmp_path):
    from googlenet.deploy.export import export_model, generated_images
    from googlenet.deploy.quantize import CALIBRATION, quantize_openvino

    fp32 = export_model(load_artifact(digits_run.run_dir), "openvino", tmp_path / "bn.xml").path
    calls = []
    quantize_openvino(fp32, tmp_path / "bn.int8.xml", generated_images(6, 32),
                      on_progress=lambda *call: calls.append(call))
    assert calls[0] == (CALIBRATION, "img", 0, 6) and calls[-1] == (CALIBRATION, "img", 6, 6)


def test_a_broken_ir_is_a_clear_error(tmp_path):
    from googlenet.errors import ModelSourceError

    bad = tmp_path / "model.xml"
    bad.write_text("<config><item/></config>")
    with pytest.raises(ModelSourceError, match="not an OpenVINO IR"):
        load_artifact(bad)
    bad.write_text("<net")
    with pytest.raises(ModelSourceError, match="not a readable OpenVINO IR"):
        load_artifact(bad)


@pytest.mark.slow  # a real server: about 20 s on 2 cores
def test_serve_answers_from_the_openvino_backend_as_predict_does(digits_run, tmp_path):
    import httpx
    from helpers import running
    from PIL import Image

    from googlenet.deploy.export import export_model
    from googlenet.inference.predictor import Predictor
    from googlenet.serving.app import ServeConfig

    ir_path = export_model(load_artifact(digits_run.run_dir), "openvino", tmp_path / "bn.xml").path
    photo = tmp_path / "digit.png"
    Image.effect_noise((20, 20), 60).convert("RGB").save(photo)
    with running(ServeConfig(model=str(ir_path), backend="openvino", threads=1)) as url:
        model = httpx.get(f"{url}/v1/model", timeout=30).json()
        response = httpx.post(f"{url}/v1/predict", files=[("files", ("digit.png", photo.read_bytes()))],
                              params={"top_k": 3}, timeout=30)
    assert response.status_code == 200, response.text
    assert "openvino" in json.dumps(model)
    expected = Predictor.load(digits_run.run_dir).predict_files([photo], top_k=3)[0]
    top = response.json()["predictions"][0]["top"]
    assert [t["class"] for t in top] == expected.classes
    assert [t["probability"] for t in top] == pytest.approx(expected.probabilities, abs=1e-4)


def test_auto_runs_fp32_onnx_on_onnxruntime_and_int8_onnx_on_openvino(digits_run, tmp_path):
    from googlenet.inference.backends import open_backend, runs_on

    fp32 = tmp_path / "bn.onnx"
    from googlenet.deploy.export import export_model, generated_images
    from googlenet.deploy.quantize import quantize_onnx

    export_model(load_artifact(digits_run.run_dir), "onnx", fp32)
    int8 = quantize_onnx(fp32, tmp_path / "bn.int8.onnx", generated_images(4, 32))
    assert runs_on(load_artifact(fp32)) == ("onnxruntime", "openvino")
    assert runs_on(load_artifact(int8)) == ("openvino", "onnxruntime")  # measured faster for QDQ
    assert open_backend(load_artifact(int8), threads=1).name == "openvino"
    assert open_backend(load_artifact(int8), "onnxruntime", threads=1).name == "onnxruntime"
