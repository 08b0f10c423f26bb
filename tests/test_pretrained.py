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

from googlenet import build_model
from googlenet.checkpoint import save_checkpoint
from googlenet.cli import main
from googlenet.config import TrainConfig, config_to_dict
from googlenet.pretrained import sources
from googlenet.pretrained.caffe import BVLC_NORMALIZATION, state_dict_to_caffe, write_caffemodel
from googlenet.pretrained.download import DownloadError, PublishedFile, fetch
from googlenet.pretrained.sources import imagenet_classes, load_weights
from googlenet.weights import TORCHVISION_GOOGLENET_NORMALIZATION


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
    real = sources.published_weights()["imagenet"]
    fake = PublishedFile(f"{url}/googlenet.pth", "googlenet-test.pth", "sha256",
                         sha256(root / "googlenet.pth")[:8])
    monkeypatch.setattr(sources, "published_weights", lambda: {
        "imagenet": sources.Published("imagenet", real.variant, fake, real.normalization, "")})
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = load_weights("imagenet")
    assert (tmp_path / "hub" / "checkpoints" / "googlenet-test.pth").is_file()
    assert weights.variant == "bn" and weights.classes == imagenet_classes()
    assert weights.classes[:2] == ["tench", "goldfish"] and len(weights.classes) == 1000
    assert weights.normalization == TORCHVISION_GOOGLENET_NORMALIZATION
    model = build_model(weights="imagenet").eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(model(x), torchvision_model(x))


def test_torchvision_state_dict_file_and_safetensors_round_trip(served, tmp_path, capsys,
                                                                 torchvision_model):
    root, _ = served
    pth = root / "googlenet.pth"
    assert main(["weights", "convert", str(pth), "--output", str(tmp_path / "w.safetensors")]) == 0
    weights = load_weights(tmp_path / "w.safetensors")
    assert weights.variant == "bn" and weights.classes == imagenet_classes()
    assert weights.normalization == TORCHVISION_GOOGLENET_NORMALIZATION
    for key, value in torchvision_model.state_dict().items():
        assert torch.equal(weights.state_dict[key], value), key
    # A plain safetensors state dict (no metadata of ours) is read as a state dict.
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in torchvision_model.state_dict().items()},
              str(tmp_path / "plain.safetensors"))
    assert load_weights(tmp_path / "plain.safetensors").variant == "bn"


def test_training_checkpoint_gives_its_averaged_weights_and_data_settings(tmp_path):
    model = build_model("bn", num_classes=3, aux_logits=False)
    ema = {k: v + 1 if v.dtype.is_floating_point else v for k, v in model.state_dict().items()}
    config = config_to_dict(TrainConfig())
    config["model"]["variant"], config["data"]["input_size"] = "bn", 64
    save_checkpoint(tmp_path / "best.pt", {"model": model.state_dict(), "ema": {"module": ema},
                                           "config": config, "classes": ["a", "b", "c"]})
    weights = load_weights(tmp_path / "best.pt")
    assert weights.averaged and weights.classes == ["a", "b", "c"] and weights.input_size == 64
    assert torch.equal(weights.state_dict["fc.weight"], ema["fc.weight"])


def test_caffemodel_file_loads_into_the_paper_variant(tmp_path):
    torch.manual_seed(0)
    model = build_model("paper")
    write_caffemodel(tmp_path / "bvlc.caffemodel", state_dict_to_caffe(model.state_dict()))
    weights = load_weights(tmp_path / "bvlc.caffemodel", variant="paper")
    assert weights.variant == "paper" and weights.normalization == BVLC_NORMALIZATION
    assert weights.preprocessing["channel_order"] == "BGR"
    loaded = build_model(weights=str(tmp_path / "bvlc.caffemodel"))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_bad_sources_are_clear_errors(tmp_path, served):
    root, _ = served
    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    with pytest.raises(ValueError, match="notes.pth is not a weights file"):
        load_weights(text)
    with pytest.raises(FileNotFoundError, match="missing.pth does not exist"):
        load_weights(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="of variant 'bn', not 'paper'"):
        load_weights(root / "googlenet.pth", variant="paper")
    torch.save({"w": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not look like a GoogLeNet state dict"):
        load_weights(tmp_path / "other.pth")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(ValueError, match="array.npy"):
        load_weights(tmp_path / "array.npy")


def test_other_class_count_replaces_the_classifiers_only(served):
    root, _ = served
    weights = load_weights(root / "googlenet.pth")
    model = build_model(weights=str(root / "googlenet.pth"), num_classes=5)
    state = model.state_dict()
    assert state["fc.weight"].shape == (5, 1024) and state["aux1.fc2.weight"].shape == (5, 1024)
    for key, value in weights.state_dict.items():
        if not key.startswith(("fc.", "aux1.fc2.", "aux2.fc2.")):
            assert torch.equal(state[key], value), key
    without_aux = build_model(weights=str(root / "googlenet.pth"), num_classes=5, aux_logits=False)
    assert not hasattr(without_aux, "aux1")


def test_predict_with_imagenet_class_names(served, tmp_path, capsys):
    from PIL import Image

    root, _ = served
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "red.png")
    code = main(["predict", str(tmp_path / "red.png"), "--weights", str(root / "googlenet.pth"),
                 "--workers", "0", "--top-k", "3", "--format", "json"])
    out = capsys.readouterr().out
    import json
    record = json.loads(out)[0]
    assert code == 0 and len(record["predictions"]) == 3
    assert all(p["class"] in imagenet_classes() for p in record["predictions"])


def test_evaluate_with_weights_needs_a_data_set_with_the_same_classes(served, tmp_path, capsys):
    from PIL import Image

    root, _ = served
    assert main(["evaluate", "--weights", str(root / "googlenet.pth")]) == 2
    assert "names no data set: give --data or --val-dir" in capsys.readouterr().err
    for name in ("cat", "dog"):
        (tmp_path / "val" / name).mkdir(parents=True)
        Image.new("RGB", (40, 40)).save(tmp_path / "val" / name / "a.png")
    assert main(["evaluate", "--weights", str(root / "googlenet.pth"), "--val-dir",
                 str(tmp_path / "val"), "--workers", "0"]) == 2
    assert "do not match" in capsys.readouterr().err
