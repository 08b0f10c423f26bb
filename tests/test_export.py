"""`googlenet export` (ONNX, TorchScript, safetensors), BN folding, LRN, and the ONNX Runtime backend."""

import json

import onnx
import pytest
import torch
from torch import nn

from googlenet.checkpoint import save_checkpoint
from googlenet.cli import main
from googlenet.config import AugmentConfig, config_to_dict, load_recipe, with_overrides
from googlenet.data import load_datasets
from googlenet.evaluate import load_for_eval
from googlenet.export import OnnxLRN, dataset_images, export_onnx, fold_batch_norm
from googlenet.model import build_model
from googlenet.onnx_backend import OnnxModel, load_onnx_for_eval

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a small shared machine two spinning threads slow everything down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomize_batch_norm(model: nn.Module) -> None:
    """Non-trivial running statistics and affine parameters, so that folding is really tested."""
    g = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
            module.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)


def fit_to_digits(model: nn.Module, data, steps: int = 45) -> None:
    """A tiny training run: Adam on the digits at 32x32, no EMA (~30 s on one busy core; about
    65% validation top-1, far above chance), cheaper than `googlenet train`'s recipe."""
    train = load_datasets(data, AugmentConfig(augment="none"), seed=0).train
    images = torch.stack([train[i][0] for i in range(len(train))])
    labels = torch.tensor(train.targets)
    optimizer = torch.optim.Adam(model.parameters(), 2e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        batch = torch.randint(len(images), (64,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def make_checkpoint(path, variant: str, fit: bool = False):
    """A checkpoint in train.py's format, for digits at 32x32."""
    config = with_overrides(load_recipe("digits"), {"variant": variant})
    torch.manual_seed(0)
    model = build_model(variant, num_classes=10)
    if fit:
        fit_to_digits(model, config.data)
    else:
        randomize_batch_norm(model)
    save_checkpoint(path, {"model": model.state_dict(), "ema": None, "config": config_to_dict(config),
                           "classes": [str(d) for d in range(10)]})
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return {variant: make_checkpoint(root / f"{variant}.pt", variant) for variant in ("bn", "paper")}


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_folded_batch_norm_equals_the_unfolded_model_in_eval_mode():
    model = build_model("bn", num_classes=10).eval()
    randomize_batch_norm(model)
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=1e-5)


def test_lrn_exports_as_the_onnx_operator_with_the_same_alpha_semantics(tmp_path):
    """ONNX's LRN divides alpha by size like PyTorch's; a large alpha makes any mismatch visible."""
    lrn = OnnxLRN(5, alpha=2.0, beta=0.75, k=1.0)
    x = torch.randn(2, 16, 7, 7) * 3
    path = tmp_path / "lrn.onnx"
    torch.onnx.export(lrn, (x,), str(path), dynamo=False, opset_version=17, input_names=["images"])
    assert [n.op_type for n in onnx.load(str(path)).graph.node] == ["LRN"]
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), nn.LocalResponseNorm(5, 2.0, 0.75, 1.0)(x),
                               atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("variant", ["bn", "paper"])
def test_onnx_export_agrees_with_pytorch_and_carries_its_metadata(checkpoints, variant, tmp_path, capsys):
    output = tmp_path / f"{variant}.onnx"
    code, out, _ = run_cli(capsys, "export", checkpoints[variant], "--format", "onnx", "--output", output)
    assert code == 0 and "max abs logit difference" in out and "validation images of digits" in out
    proto = onnx.load(str(output))
    onnx.checker.check_model(proto, full_check=True)
    ops = {node.op_type for node in proto.graph.node}
    assert "BatchNormalization" not in ops
    assert ("LRN" in ops) == (variant == "paper") and "Pow" not in ops
    loaded = load_onnx_for_eval(output)
    reference = load_for_eval(checkpoints[variant], CPU)
    assert loaded.classes == reference.classes == [str(d) for d in range(10)]
    assert (loaded.data.input_size, loaded.data.mean, loaded.data.std, loaded.data.data) == (
        32, reference.data.mean, reference.data.std, "digits")
    assert loaded.model.metadata["googlenet.variant"] == variant
    images, _ = dataset_images(reference.data, 16)  # real digits
    with torch.no_grad():
        expected = reference.model(images)
    got = loaded.model.eval()(images.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("variant", ["bn", "paper"])
def test_torchscript_export_agrees_and_writes_a_metadata_side_file(checkpoints, variant, tmp_path, capsys):
    output = tmp_path / f"{variant}.pt"
    code, out, _ = run_cli(capsys, "export", checkpoints[variant], "--format", "torchscript",
                           "--output", output)
    assert code == 0 and f"{output}.json" in out
    side = json.loads((tmp_path / f"{variant}.pt.json").read_text())
    extra = {"googlenet.json": ""}
    scripted = torch.jit.load(str(output), _extra_files=extra)
    assert json.loads(extra["googlenet.json"]) == side and side["googlenet.variant"] == variant
    reference = load_for_eval(checkpoints[variant], CPU)
    images, _ = dataset_images(reference.data, 4)
    with torch.no_grad():
        torch.testing.assert_close(scripted(images), reference.model(images), atol=1e-4, rtol=1e-4)


def test_safetensors_export_holds_the_state_dict_and_metadata(checkpoints, tmp_path, capsys):
    from safetensors import safe_open

    output = tmp_path / "bn.safetensors"
    code, out, _ = run_cli(capsys, "export", checkpoints["bn"], "--format", "safetensors", "--output", output)
    assert code == 0 and "difference 0" in out
    with safe_open(str(output), "pt") as f:
        assert json.loads(f.metadata()["googlenet.classes"]) == [str(d) for d in range(10)]
        assert "conv1.bn.running_var" in f.keys()  # unfolded, loadable into build_model


def test_fixed_batch_export_runs_any_batch_through_the_backend(checkpoints, tmp_path, capsys):
    output = tmp_path / "fixed.onnx"
    code, _, _ = run_cli(capsys, "export", checkpoints["bn"], "--batch", "3", "--output", output)
    assert code == 0
    model = OnnxModel(output, threads=1)
    assert model.fixed_batch == 3
    reference = load_for_eval(checkpoints["bn"], CPU).model
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-4, rtol=1e-4)


def test_a_parity_failure_makes_the_command_fail(checkpoints, tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", checkpoints["bn"], "--output", tmp_path / "m.onnx",
                           "--tolerance", "-1")
    assert code == 1 and "differs from PyTorch" in err


def test_missing_files_are_clear_errors(tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    code, _, err = run_cli(capsys, "export", missing)
    assert code == 2 and str(missing) in err and "does not exist" in err
    code, _, err = run_cli(capsys, "export")
    assert code == 2 and "give a checkpoint or --weights" in err
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        load_onnx_for_eval(tmp_path / "nope.onnx")


def test_an_onnx_file_without_our_metadata_is_a_clear_error(tmp_path):
    path = tmp_path / "plain.onnx"
    export_onnx(build_model("bn", num_classes=10).eval(), path, 32, None, 17, {})
    with pytest.raises(ValueError, match="no googlenet metadata"):
        load_onnx_for_eval(path)


def test_evaluate_and_predict_with_the_onnxruntime_backend(checkpoints, tmp_path, capsys):
    onnx_path = tmp_path / "bn.onnx"
    assert main(["export", str(checkpoints["bn"]), "--output", str(onnx_path)]) == 0
    capsys.readouterr()
    records = {}
    for backend, source in (("torch", checkpoints["bn"]), ("onnxruntime", onnx_path)):
        code, out, _ = run_cli(capsys, "evaluate", source, "--backend", backend, "--limit", "40",
                               "--workers", "0", "--format", "json")
        assert code == 0
        records[backend] = json.loads(out)
    assert records["onnxruntime"]["top1"] == records["torch"]["top1"]
    assert records["onnxruntime"]["images"] == 40
    image = tmp_path / "digit.png"
    from PIL import Image
    Image.new("RGB", (8, 8), (255, 255, 255)).save(image)
    code, out, _ = run_cli(capsys, "predict", image, "--checkpoint", onnx_path, "--workers", "0",
                           "--format", "json")
    assert code == 0 and len(json.loads(out)[0]["predictions"]) == 5
    code, _, err = run_cli(capsys, "evaluate", checkpoints["bn"], "--backend", "onnxruntime")
    assert code == 2 and "runs an exported .onnx model" in err
    code, _, err = run_cli(capsys, "evaluate", onnx_path, "--backend", "torch")
    assert code == 2 and "use --backend onnxruntime" in err


def test_export_takes_a_weights_source(tmp_path, capsys):
    torch.manual_seed(0)
    pth = tmp_path / "tv.pth"
    torch.save(build_model("bn").state_dict(), pth)  # a torchvision-style state dict, 1000 classes
    onnx_path = tmp_path / "tv.onnx"
    code, out, _ = run_cli(capsys, "export", "--weights", pth, "--variant", "bn", "--output", onnx_path,
                           "--check-images", "2")
    assert code == 0 and "max abs logit difference" in out
    loaded = load_onnx_for_eval(onnx_path)
    assert len(loaded.classes) == 1000 and loaded.classes[0] == "tench"
    assert loaded.data.mean == (0.5, 0.5, 0.5)  # torchvision's transform_input preprocessing
    code, _, err = run_cli(capsys, "export", "--weights", pth, "--variant", "paper")
    assert code == 2 and "of variant 'bn', not 'paper'" in err
    code, _, err = run_cli(capsys, "export", onnx_path, "--weights", pth)
    assert code == 2 and "not both" in err
