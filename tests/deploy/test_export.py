"""`googlenet export` (ONNX, TorchScript, safetensors), BN folding, LRN, and the ONNX Runtime backend.
(Metadata round trips of every format: tests/artifact/test_artifact.py.)"""

import json
import pathlib

import onnx
import pytest
import torch
from conftest import randomize_batch_norm
from torch import nn

from googlenet.artifact import schema
from googlenet.artifact.build import model_from_artifact
from googlenet.cli.main import main
from googlenet.deploy.export import FastLRN, export_onnx, fold_batch_norm
from googlenet.inference.backends import OnnxBackend
from googlenet.model.network import build_network
from googlenet.weights.sources import load_artifact

pytestmark = pytest.mark.usefixtures("one_thread")


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_folded_batch_norm_equals_the_unfolded_model_in_eval_mode():
    model = build_network("bn", num_classes=10).eval()
    randomize_batch_norm(model)
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("beta", [0.75, 0.6])  # the paper's (square roots), and any other (Pow)
def test_lrn_exports_as_fast_ops_computing_pytorchs_lrn(tmp_path, beta):
    """A large alpha and inputs makes any mismatch of the window or of alpha's scaling visible."""
    lrn = FastLRN(5, alpha=2.0, beta=beta, k=1.0)
    x = torch.randn(2, 16, 7, 7) * 3
    reference = nn.LocalResponseNorm(5, 2.0, beta, 1.0)(x)
    torch.testing.assert_close(lrn(x), reference, atol=1e-5, rtol=1e-4)
    path = tmp_path / "lrn.onnx"
    torch.onnx.export(lrn, (x,), str(path), dynamo=False, opset_version=17, input_names=["images"])
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "LRN" not in ops and "AveragePool" in ops and ("Pow" in ops) == (beta != 0.75)
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), reference, atol=1e-5, rtol=1e-4)


def test_onnx_export_of_a_trained_run_checks_on_its_validation_images(digits_run, tmp_path, capsys):
    output = tmp_path / "run.onnx"
    code, out, _ = run_cli(capsys, "export", "-m", digits_run.run_dir, "--to", "onnx",
                           "--output", output)
    assert code == 0 and "max abs logit difference" in out and "validation images of digits" in out
    proto = onnx.load(str(output))
    onnx.checker.check_model(proto, full_check=True)
    assert "BatchNormalization" not in {node.op_type for node in proto.graph.node}
    record = json.loads({p.key: p.value for p in proto.metadata_props}[schema.METADATA_KEY])
    assert record["provenance"]["config"]["data"]["path"] == "digits"
    assert load_artifact(output).classes == tuple(str(d) for d in range(10))


def test_paper_variant_exports_lrn_as_the_onnx_operator(odd_artifact, tmp_path, capsys):
    from googlenet.artifact.files import save_safetensors

    source = save_safetensors(odd_artifact, tmp_path / "odd.safetensors")
    code, out, _ = run_cli(capsys, "export", "-m", source, "--output", tmp_path / "odd.onnx")
    assert code == 0 and "parity on 8 generated images" in out  # no data: never the working dir
    ops = {node.op_type for node in onnx.load(str(tmp_path / "odd.onnx")).graph.node}
    assert ("AveragePool" in ops) == (odd_artifact.variant == "paper")  # LRN's window mean
    assert "LRN" not in ops and "Pow" not in ops


def test_fixed_batch_export_runs_any_batch_through_the_backend(odd_artifact, tmp_path, capsys):
    from googlenet.deploy.export import export_model

    result = export_model(odd_artifact, "onnx", tmp_path / "fixed.onnx", batch=3)
    assert result.ok
    model = OnnxBackend(result.path, threads=1)
    assert model.fixed_batch == 3
    reference = model_from_artifact(odd_artifact, aux_logits=False).eval()
    x = torch.randn(5, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-4, rtol=1e-4)


def test_a_parity_failure_makes_the_command_fail(digits_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", "-m", digits_run.run_dir, "--output", tmp_path / "m.onnx",
                           "--tolerance", "-1")
    assert code == 1 and "differs from PyTorch" in err


def test_missing_files_are_clear_errors(tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    code, _, err = run_cli(capsys, "export", "-m", missing)
    assert code == 2 and str(missing) in err and "does not exist" in err
    with pytest.raises(SystemExit):
        main(["export"])
    assert "-m/--model" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        OnnxBackend(tmp_path / "nope.onnx")


def test_an_onnx_file_without_our_metadata_is_a_clear_error(tmp_path):
    path = tmp_path / "plain.onnx"
    export_onnx(build_network("bn", num_classes=10).eval(), path, 32, None, 17, {})
    with pytest.raises(ValueError, match="no googlenet metadata"):
        load_artifact(path)


def test_evaluate_and_predict_with_the_onnxruntime_backend(digits_run, tmp_path, capsys):
    onnx_path = tmp_path / "bn.onnx"
    assert main(["export", "-m", str(digits_run.run_dir), "--output", str(onnx_path)]) == 0
    capsys.readouterr()
    records = {}
    for backend, source in (("torch", digits_run.run_dir), ("onnxruntime", onnx_path)):
        code, out, _ = run_cli(capsys, "evaluate", "-m", source, "--backend", backend, "--limit", "40",
                               "--workers", "0", "--format", "json")
        assert code == 0
        records[backend] = json.loads(out)
    assert records["onnxruntime"]["top1"] == records["torch"]["top1"]
    assert records["onnxruntime"]["images"] == 40
    image = tmp_path / "digit.png"
    from PIL import Image
    Image.new("RGB", (8, 8), (255, 255, 255)).save(image)
    code, out, _ = run_cli(capsys, "predict", image, "-m", onnx_path, "--workers", "0",
                           "--format", "json")
    assert code == 0 and len(json.loads(out)[0]["predictions"]) == 5
    code, _, err = run_cli(capsys, "evaluate", "-m", digits_run.run_dir, "--backend", "onnxruntime")
    assert code == 2 and "runs on the torch backend, not onnxruntime" in err
    code, _, err = run_cli(capsys, "evaluate", "-m", onnx_path, "--backend", "torch")
    assert code == 2 and "runs on the onnxruntime or openvino backend, not torch" in err


def test_export_takes_a_weights_file_with_its_preprocessing_stated(tmp_path, capsys):
    torch.manual_seed(0)
    pth = tmp_path / "tv.pth"
    torch.save(build_network("bn").state_dict(), pth)  # a torchvision-style state dict, 1000 classes
    onnx_path = tmp_path / "tv.onnx"
    code, _, err = run_cli(capsys, "export", "-m", pth, "--output", onnx_path)
    assert code == 2 and "bare state dict" in err and not onnx_path.exists()
    # The command line names its flag, never the Python setting.
    assert "State it with --preprocess imagenet|inception|caffe (" in err and "preprocess=" not in err
    code, out, _ = run_cli(capsys, "export", "-m", pth, "--preprocess", "inception",
                           "--output", onnx_path, "--check-images", "2")
    assert code == 0 and "max abs logit difference" in out
    loaded = load_artifact(onnx_path)
    assert len(loaded.classes) == 1000 and loaded.classes[0] == "tench"
    assert loaded.preprocessing.mean == (0.5, 0.5, 0.5)  # torchvision's transform_input


def test_export_never_replaces_a_file_silently_and_writes_usual_modes(odd_artifact, tmp_path, capsys,
                                                                       monkeypatch):
    from googlenet.artifact.files import save_safetensors

    source = save_safetensors(odd_artifact, tmp_path / "odd.safetensors")
    assert (source.stat().st_mode & 0o777) == 0o644  # not 0600
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "export", "-m", source, "--to", "torchscript", "--check-images", "2")
    # Under outputs/, not loose in the working directory; not a checkpoint-like .pt.
    assert code == 0 and "wrote outputs/odd.torchscript (torchscript)" in out
    written = tmp_path / "outputs" / "odd.torchscript"
    assert (written.stat().st_mode & 0o777) == 0o644
    before = written.read_bytes()
    code, _, err = run_cli(capsys, "export", "-m", source, "--to", "torchscript")
    assert code == 2 and "odd.torchscript exists; replace it with --force" in err
    assert written.read_bytes() == before
    code, _, _ = run_cli(capsys, "export", "-m", source, "--to", "torchscript", "--force",
                         "--check-images", "2")
    assert code == 0


def test_the_format_follows_the_output_suffix_and_no_unreadable_file_is_left(odd_artifact, tmp_path,
                                                                             capsys, monkeypatch):
    from googlenet.artifact.files import save_safetensors

    source = save_safetensors(odd_artifact, tmp_path / "odd.safetensors")
    code, out, _ = run_cli(capsys, "export", "-m", source, "--output", tmp_path / "x.safetensors",
                           "--check-images", "2")
    assert code == 0 and "(safetensors)" in out
    assert load_artifact(tmp_path / "x.safetensors").classes == odd_artifact.classes
    code, out, _ = run_cli(capsys, "export", "-m", source, "--output", tmp_path / "plain",
                           "--check-images", "2")  # no suffix: the format's own is added
    assert code == 0 and f"wrote {tmp_path / 'plain.onnx'} (onnx)" in out
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv, message in [(("--to", "onnx", "--output", tmp_path / "y.safetensors"),
                           "the format onnx is written as *.onnx, and .safetensors names safetensors"),
                          (("--output", tmp_path / "y.pt"), "no export format is written as '.pt'")]:
        code, _, err = run_cli(capsys, "export", "-m", source, *argv)
        assert code == 2 and message in err and "Traceback" not in err
    # A file that fails its own read-back never takes the output's name, nor stays behind.
    monkeypatch.setattr("googlenet.deploy.export.reload",
                        lambda path, artifact: (_ for _ in ()).throw(ValueError(f"{path}: unreadable")))
    code, _, err = run_cli(capsys, "export", "-m", source, "--output", tmp_path / "z.onnx")
    assert code == 2 and "unreadable" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no z.onnx, no staging folder
    # Without --output: in the model's run, else under outputs/.
    from googlenet.deploy.export import output_path

    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(b"")
    assert output_path(None, str(run / "best.pt"), "onnx") == run / "r1.onnx"
    assert output_path(None, str(run), "onnx") == run / "r1.onnx"
    assert output_path(None, "imagenet", "onnx") == pathlib.Path("outputs/imagenet.onnx")
    assert output_path(None, "<in memory>", "openvino") == pathlib.Path("outputs/googlenet.xml")
    assert output_path(None, str(source), "safetensors") == pathlib.Path("outputs/odd.safetensors")
    assert output_path(None, "outputs/odd.onnx", "onnx") == pathlib.Path("outputs/odd-export.onnx")
