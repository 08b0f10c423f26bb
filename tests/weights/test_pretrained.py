"""Weights sources: the hash-checked download (against a loopback server), every local format,
and identical outputs to torchvision's model with the same state dict."""

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

import googlenet
from googlenet import build_model
from googlenet.artifact import schema
from googlenet.artifact.build import model_from_artifact
from googlenet.cli.main import main
from googlenet.data.preprocessing import preset
from googlenet.errors import ModelSourceError
from googlenet.training.checkpoint import save_checkpoint
from googlenet.training.config import TrainConfig, config_to_dict, with_overrides
from googlenet.training.run_state import run_artifact
from googlenet.weights import published as published_module
from googlenet.weights.caffe import state_dict_to_caffe, write_caffemodel
from googlenet.weights.download import DownloadError, PublishedFile, fetch
from googlenet.weights.published import Published, imagenet_classes
from googlenet.weights.sources import load_artifact, load_model


@pytest.fixture(scope="module")
def torchvision_model():
    torch.manual_seed(0)
    return torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True,
                                        transform_input=False).eval()


@pytest.fixture(scope="module")
def served(tmp_path_factory, torchvision_model):
    """A loopback HTTP server whose root holds torchvision-style weights (googlenet.pth)."""
    root = tmp_path_factory.mktemp("www")
    torch.save(torchvision_model.state_dict(), root / "googlenet.pth")
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_checks_the_hash_and_caches(served, tmp_path):
    root, url = served
    published = PublishedFile(f"{url}/googlenet.pth", "googlenet-abc.pth", "sha256",
                              sha256(root / "googlenet.pth")[:8])
    path = fetch(published, tmp_path)
    assert path == tmp_path / "googlenet-abc.pth"
    assert path.read_bytes() == (root / "googlenet.pth").read_bytes()
    # A second call uses the cache: it works with the server address unreachable.
    offline = PublishedFile("http://127.0.0.1:9/googlenet.pth", published.file_name, "sha256",
                            published.digest_prefix)
    assert fetch(offline, tmp_path) == path


def test_a_hash_mismatch_is_an_error_and_leaves_nothing_in_the_cache(served, tmp_path):
    _, url = served
    published = PublishedFile(f"{url}/googlenet.pth", "googlenet-00000000.pth", "sha256", "00000000")
    with pytest.raises(DownloadError, match="expected one starting with 00000000"):
        fetch(published, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_without_a_network_the_error_names_the_file_to_place(tmp_path):
    published = PublishedFile("http://127.0.0.1:9/x.pth", "x-1234.pth", "sha256", "1234")
    with pytest.raises(DownloadError, match=f"place it at {tmp_path / 'x-1234.pth'}"):
        fetch(published, tmp_path, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_imagenet_weights_match_torchvision_outputs(served, tmp_path, monkeypatch, torchvision_model):
    root, url = served
    real = published_module.PUBLISHED["imagenet"]
    fake = PublishedFile(f"{url}/googlenet.pth", "googlenet-test.pth", "sha256",
                         sha256(root / "googlenet.pth")[:8])
    monkeypatch.setitem(published_module.PUBLISHED, "imagenet",
                        Published("imagenet", real.variant, fake, real.preprocess, ""))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    artifact = load_artifact("imagenet")
    assert (tmp_path / "hub" / "checkpoints" / "googlenet-test.pth").is_file()
    assert artifact.variant == "bn" and artifact.classes == imagenet_classes()
    assert artifact.classes[:2] == ("tench", "goldfish") and len(artifact.classes) == 1000
    assert artifact.preprocessing == preset("inception") and artifact.source == "imagenet"
    model = load_model("imagenet").eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(model(x), torchvision_model(x))
    # the entry point, as torchvision's googlenet(weights=...): the model carries its record
    entry = googlenet.googlenet(weights="imagenet").eval()
    assert entry.variant.name == "bn" and entry.classes == imagenet_classes()
    assert entry.artifact.preprocessing == preset("inception") and entry.artifact.source == "imagenet"
    with torch.no_grad():
        assert torch.equal(entry(x), torchvision_model(x))
    with pytest.raises(ModelSourceError, match="holds variant 'bn' weights, not 'paper'"):
        googlenet.googlenet(weights="imagenet", variant="paper")


def test_a_bare_state_dict_needs_its_preprocessing_stated(served):
    root, _ = served
    with pytest.raises(ModelSourceError,
                       match='bare state dict.*preprocess="imagenet" \\| "inception" \\| "caffe"'):
        load_artifact(root / "googlenet.pth")
    artifact = load_artifact(root / "googlenet.pth", preprocess="imagenet")
    assert artifact.preprocessing == preset("imagenet") and artifact.variant == "bn"


def test_torchvisions_published_file_is_recognised_by_its_hash(served, monkeypatch):
    root, _ = served
    digest = sha256(root / "googlenet.pth")
    real = published_module.PUBLISHED["imagenet"]
    monkeypatch.setitem(published_module.PUBLISHED, "imagenet", Published(
        "imagenet", "bn", PublishedFile(real.file.url, real.file.file_name, "sha256", digest[:8]),
        "inception", ""))
    artifact = load_artifact(root / "googlenet.pth")  # no preprocessing stated: recognised
    assert artifact.preprocessing == preset("inception") and artifact.source == "imagenet"


def test_torchvision_state_dict_file_and_safetensors_round_trip(served, tmp_path, capsys,
                                                                 torchvision_model):
    root, _ = served
    pth = root / "googlenet.pth"
    assert main(["weights", "convert", "-m", str(pth), "--preprocess", "inception",
                 "--output", str(tmp_path / "w.safetensors")]) == 0
    artifact = load_artifact(tmp_path / "w.safetensors")
    assert artifact.variant == "bn" and artifact.classes == imagenet_classes()
    assert artifact.preprocessing == preset("inception")
    for key, value in torchvision_model.state_dict().items():
        assert torch.equal(artifact.state_dict[key], value), key
    # A plain safetensors state dict (no metadata of ours) is read as a bare state dict.
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in torchvision_model.state_dict().items()},
              str(tmp_path / "plain.safetensors"))
    assert load_artifact(tmp_path / "plain.safetensors", preprocess="imagenet").variant == "bn"


def test_training_checkpoint_gives_its_averaged_weights_and_preprocessing(tmp_path):
    model = build_model("bn", num_classes=3, aux_logits=False)
    ema = {k: v + 1 if v.dtype.is_floating_point else v for k, v in model.state_dict().items()}
    config = with_overrides(TrainConfig(), {"variant": "bn", "input_size": 64})
    save_checkpoint(tmp_path / "best.pt", {
        "model": model.state_dict(), "ema": {"module": ema}, "config": config_to_dict(config),
        "classes": ["a", "b", "c"], "artifact": schema.to_dict(run_artifact(config, ["a", "b", "c"], None))})
    artifact = load_artifact(tmp_path / "best.pt")
    assert artifact.provenance.averaged and artifact.classes == ("a", "b", "c")
    assert artifact.preprocessing.input_size == 64
    assert torch.equal(artifact.state_dict["fc.weight"], ema["fc.weight"])
    assert load_artifact(tmp_path) == artifact  # a run directory: its best.pt


def test_caffemodel_file_loads_into_the_paper_variant(tmp_path):
    torch.manual_seed(0)
    model = build_model("paper")
    write_caffemodel(tmp_path / "bvlc.caffemodel", state_dict_to_caffe(model.state_dict()))
    artifact = load_artifact(tmp_path / "bvlc.caffemodel")
    assert artifact.variant == "paper" and artifact.preprocessing == preset("caffe")
    loaded = load_model(tmp_path / "bvlc.caffemodel")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_bad_sources_are_clear_errors(tmp_path, served):
    root, _ = served
    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    with pytest.raises(ValueError, match="notes.pth is not a model file"):
        load_artifact(text)
    with pytest.raises(FileNotFoundError, match="missing.pth does not exist"):
        load_artifact(tmp_path / "missing.pth")
    torch.save({"w": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not look like a GoogLeNet state dict"):
        load_artifact(tmp_path / "other.pth")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(ValueError, match="array.npy"):
        load_artifact(tmp_path / "array.npy")
    with pytest.raises(ValueError, match="without best.pt or last.pt"):
        load_artifact(tmp_path)


def test_other_class_count_replaces_the_classifiers_only(served):
    root, _ = served
    artifact = load_artifact(root / "googlenet.pth", preprocess="inception")
    model = model_from_artifact(artifact, num_classes=5)
    state = model.state_dict()
    assert state["fc.weight"].shape == (5, 1024) and state["aux1.fc2.weight"].shape == (5, 1024)
    for key, value in artifact.state_dict.items():
        if not key.startswith(("fc.", "aux1.fc2.", "aux2.fc2.")):
            assert torch.equal(state[key], value), key
    without_aux = model_from_artifact(artifact, num_classes=5, aux_logits=False)
    assert not hasattr(without_aux, "aux1")


def test_predict_with_imagenet_class_names(served, tmp_path, capsys):
    from PIL import Image

    root, _ = served
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "red.png")
    code = main(["predict", str(tmp_path / "red.png"), "-m", str(root / "googlenet.pth"),
                 "--preprocess", "inception", "--workers", "0", "--top-k", "3", "--format", "json"])
    out = capsys.readouterr().out
    import json
    record = json.loads(out)[0]
    assert code == 0 and len(record["predictions"]) == 3
    assert all(p["class"] in imagenet_classes() for p in record["predictions"])


def test_evaluate_with_weights_needs_a_data_set_with_the_same_classes(served, tmp_path, capsys):
    from PIL import Image

    root, _ = served
    model = ["-m", str(root / "googlenet.pth"), "--preprocess", "inception"]
    assert main(["evaluate", *model]) == 2
    assert "records no data set: give --data or --val-dir" in capsys.readouterr().err
    for name in ("cat", "dog"):
        (tmp_path / "val" / name).mkdir(parents=True)
        Image.new("RGB", (40, 40)).save(tmp_path / "val" / name / "a.png")
    assert main(["evaluate", *model, "--val-dir", str(tmp_path / "val"), "--workers", "0"]) == 2
    assert "do not match" in capsys.readouterr().err
