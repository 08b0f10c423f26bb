"""One artifact, one schema, every format: save or export, load, and get the same classes,
preprocessing and (within tolerance) outputs, for both variants and a model whose input size,
classes and normalisation are all non-default."""

from __future__ import annotations

import json

import pytest
import torch

from googlenet.artifact import schema
from googlenet.artifact.build import model_from_artifact
from googlenet.artifact.files import save_safetensors
from googlenet.data.preprocessing import PRESETS, Preprocessing, preset
from googlenet.data.transforms import Normalize
from googlenet.deploy.export import export_model
from googlenet.errors import SchemaError
from googlenet.inference.predictor import Predictor
from googlenet.training.checkpoint import save_checkpoint
from googlenet.weights.sources import load_artifact

FORMATS = ("safetensors", "onnx", "torchscript")


def same_metadata(loaded, original) -> None:
    assert loaded.variant == original.variant
    assert loaded.classes == original.classes
    assert loaded.preprocessing == original.preprocessing


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_export_format_round_trips(odd_artifact, odd_images, fmt, tmp_path, one_thread):
    result = export_model(odd_artifact, fmt, tmp_path / f"model.{fmt}", check_count=2)
    assert result.ok, result
    loaded = load_artifact(result.path)
    same_metadata(loaded, odd_artifact)
    ours = Predictor.from_model(model_from_artifact(odd_artifact, aux_logits=False))  # its record
    theirs = Predictor.load(result.path)
    assert theirs.preprocessing == odd_artifact.preprocessing
    expected = ours.predict_files(odd_images, top_k=3, workers=0)
    got = theirs.predict_files(odd_images, top_k=3, workers=0)
    assert [p.classes for p in got] == [p.classes for p in expected]
    torch.testing.assert_close(torch.tensor([p.probabilities for p in got]),
                               torch.tensor([p.probabilities for p in expected]), atol=1e-4, rtol=1e-4)


def test_a_training_checkpoint_round_trips(odd_artifact, tmp_path):
    record = schema.to_dict(odd_artifact)
    save_checkpoint(tmp_path / "best.pt", {"model": dict(odd_artifact.state_dict), "ema": None,
                                           "artifact": record})
    loaded = load_artifact(tmp_path / "best.pt")
    same_metadata(loaded, odd_artifact)
    assert not loaded.provenance.averaged and loaded.provenance.sha256
    for key, value in odd_artifact.state_dict.items():
        assert torch.equal(loaded.state_dict[key], value), key


def test_safetensors_keep_the_metadata_in_their_header(odd_artifact, tmp_path):
    from safetensors import safe_open

    path = save_safetensors(odd_artifact, tmp_path / "m.safetensors")
    with safe_open(str(path), "pt") as f:
        record = json.loads(f.metadata()[schema.METADATA_KEY])
    assert record["schema"] == schema.SCHEMA and record["classes"] == list(odd_artifact.classes)


def test_a_newer_schema_version_is_a_clear_error(odd_artifact, tmp_path):
    record = schema.to_dict(odd_artifact)
    record["version"] = schema.VERSION + 1
    with pytest.raises(SchemaError, match=f"schema version {schema.VERSION + 1}, newer"):
        schema.from_dict(record, "x.onnx")
    with pytest.raises(SchemaError, match="not a 'googlenet-artifact' record"):
        schema.from_dict({"schema": "other"}, "x.onnx")
    with pytest.raises(SchemaError, match="malformed"):
        schema.from_dict({**schema.to_dict(odd_artifact), "preprocessing": {"mean": [1]}}, "x.onnx")
    save_checkpoint(tmp_path / "new.pt", {"model": dict(odd_artifact.state_dict), "ema": None,
                                          "artifact": record})
    with pytest.raises(SchemaError, match="upgrade googlenet"):
        load_artifact(tmp_path / "new.pt")


def test_preprocessing_expresses_torchvision_and_caffe():
    x = torch.rand(3, 4, 4)
    imagenet = Normalize(preset("imagenet"))(x)
    mean, std = torch.tensor(preset("imagenet").mean), torch.tensor(preset("imagenet").std)
    torch.testing.assert_close(imagenet, (x - mean[:, None, None]) / std[:, None, None])
    # torchvision's transform_input: ImageNet-normalised input turned into (x - 0.5) / 0.5
    torch.testing.assert_close(Normalize(preset("inception"))(x), (x - 0.5) / 0.5)
    # BVLC Caffe: BGR, 0-255, mean subtracted, no division
    bgr = Preprocessing(mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0), value_scale=255.0,
                        channel_order="BGR")
    caffe = x.flip(0) * 255 - torch.tensor([104.0, 117.0, 123.0])[:, None, None]
    torch.testing.assert_close(Normalize(bgr)(x), caffe)
    uint8 = (x * 255).round().to(torch.uint8)
    torch.testing.assert_close(Normalize(bgr).from_uint8(uint8), Normalize(bgr)(uint8 / 255))
    assert set(PRESETS) == {"imagenet", "inception", "caffe"}
    assert Preprocessing.from_dict(bgr.to_dict()) == bgr


def test_a_checkpoint_of_googlenet_0_1_still_loads(tmp_path):
    """Version 1 kept the preprocessing in the training config, with the old field names."""
    import torch as t

    from googlenet.model.network import build_network
    from googlenet.runtime.files import atomic_path

    model = build_network("bn", num_classes=2, aux_logits=False)
    config = {"model": {"variant": "bn"}, "data": {"data": "digits", "input_size": 48,
                                                   "eval_crop_ratio": 0.9, "mean": [0.1, 0.2, 0.3],
                                                   "std": [0.4, 0.5, 0.6]}}
    with atomic_path(tmp_path / "old.pt") as tmp:
        t.save({"format": "googlenet-checkpoint", "version": 1, "model": model.state_dict(),
                "ema": None, "config": config, "classes": ["a", "b"]}, tmp)
    artifact = load_artifact(tmp_path / "old.pt")
    assert artifact.classes == ("a", "b") and artifact.variant == "bn"
    assert artifact.preprocessing == Preprocessing(input_size=48, crop_ratio=0.9, mean=(0.1, 0.2, 0.3),
                                                   std=(0.4, 0.5, 0.6))
    assert artifact.recorded_data().path == "digits"  # 0.1's data.data, upgraded
