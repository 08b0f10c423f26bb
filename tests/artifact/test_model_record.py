"""Every model the library builds or loads carries its record: `model.artifact`, `model.classes`,
`model.transforms()`; export, Predictor and the entry point read it from the model."""

import numpy as np
import pytest
import torch
from PIL import Image

import googlenet
from googlenet.artifact.build import artifact_of, build_model, model_from_artifact
from googlenet.data.preprocessing import Preprocessing
from googlenet.data.transforms import eval_transform
from googlenet.deploy.export import export_model
from googlenet.errors import ModelSourceError
from googlenet.inference.predictor import Predictor
from googlenet.model.network import build_network
from googlenet.weights.sources import load_artifact

SMALL = Preprocessing(input_size=40, crop_ratio=0.8)


def test_a_fresh_model_knows_its_variant_classes_and_preprocessing():
    model = googlenet.googlenet()
    assert model.variant.name == "paper"  # arch.table.DEFAULT_VARIANT, as googlenet.build_model
    assert model.artifact.variant == "paper" and model.num_classes == 1000
    assert model.classes == tuple(str(i) for i in range(1000))
    assert model.artifact.preprocessing == Preprocessing() and model.artifact.state_dict is None
    named = googlenet.build_model("bn", classes=["cat", "dog"], preprocessing=SMALL, aux_logits=False)
    assert named.num_classes == 2 and named.classes == ("cat", "dog")
    assert named.artifact.preprocessing == SMALL and not named.artifact.aux_logits
    with pytest.raises(ValueError, match="num_classes 3 but 2 class names"):
        build_model("bn", 3, classes=["cat", "dog"])


def test_transforms_take_a_pil_image_or_a_tensor_and_give_the_eval_input():
    model = build_model("bn", classes=["a", "b"], preprocessing=SMALL)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))
    transform = model.transforms()
    from_pil = transform(image)
    assert from_pil.shape == (3, 40, 40) and from_pil.dtype == torch.float32
    torch.testing.assert_close(from_pil, eval_transform(SMALL)(image))
    as_uint8 = torch.from_numpy(np.array(image)).permute(2, 0, 1)
    torch.testing.assert_close(transform(as_uint8), from_pil)
    torch.testing.assert_close(transform(as_uint8.float() / 255), from_pil)  # ToTensor's output
    with pytest.raises(ValueError, match="3 x H x W RGB image tensor"):
        transform(torch.zeros(1, 3, 50, 70))
    with pytest.raises(ValueError, match="no record"):
        build_network("bn").transforms()


def test_loaded_models_carry_the_files_record(odd_artifact, tmp_path):
    from googlenet.artifact.files import save_safetensors

    path = tmp_path / "odd.safetensors"
    save_safetensors(odd_artifact, path)
    model = googlenet.googlenet(weights=path)
    assert model.classes == odd_artifact.classes and model.variant.name == odd_artifact.variant
    assert model.artifact.preprocessing == odd_artifact.preprocessing
    assert model.artifact.source == str(path) and model.artifact.state_dict is None
    assert model.transforms()(Image.new("RGB", (60, 50))).shape == (3, 40, 40)
    other = "bn" if odd_artifact.variant == "paper" else "paper"
    with pytest.raises(ModelSourceError, match=f"variant {odd_artifact.variant!r} weights, not {other!r}"):
        googlenet.googlenet(weights=path, variant=other)
    # fine-tuning: new classifiers, so the names are gone until a run names the classes
    tuned = googlenet.load_model(path, num_classes=5)
    assert tuned.classes == ("0", "1", "2", "3", "4") and tuned.artifact.source == str(path)


def test_predictor_and_export_read_the_record_from_the_model(odd_artifact, tmp_path):
    model = model_from_artifact(odd_artifact, aux_logits=False).eval()
    predictor = Predictor.from_model(model)
    assert predictor.classes == odd_artifact.classes
    assert predictor.preprocessing == odd_artifact.preprocessing
    renamed = Predictor.from_model(model, classes=["x", "y", "z"])
    assert renamed.classes == ("x", "y", "z") and renamed.preprocessing == odd_artifact.preprocessing
    result = export_model(model, "onnx", tmp_path / "odd.onnx", check_count=2)
    assert result.ok
    exported = load_artifact(result.path)
    assert exported.classes == odd_artifact.classes
    assert exported.preprocessing == odd_artifact.preprocessing


def test_the_record_follows_the_weights_and_the_classifier():
    model = build_model("bn", classes=["a", "b", "c"], preprocessing=SMALL)
    with torch.no_grad():
        model.fc.bias.fill_(0.5)
    record = artifact_of(model)
    torch.testing.assert_close(record.state_dict["fc.bias"], torch.full((3,), 0.5))
    assert record.classes == ("a", "b", "c") and record.aux_logits
    model.reset_classifier(4)  # the names no longer fit the outputs
    assert model.classes == ("0", "1", "2", "3") and artifact_of(model).num_classes == 4


def test_an_artifact_knows_the_data_its_run_trained_on():
    from googlenet.artifact.record import Artifact, Provenance
    from googlenet.data.config import DataConfig

    run = Artifact("bn", ("a", "b"), Preprocessing(), provenance=Provenance(
        source="runs/x", config={"data": {"path": "photos", "input_size": 64, "mean": [0.5] * 3}}))
    data = run.recorded_data()
    assert isinstance(data, DataConfig) and data.path == "photos" and data.input_size == 64
    assert data.mean == (0.5, 0.5, 0.5)  # lists back to tuples, as the config reader gives
    assert Artifact("bn", ("a",), Preprocessing()).recorded_data() is None  # published weights


def test_a_loaded_model_is_ready_to_predict_and_a_missing_one_is_a_library_error(tmp_path):
    from googlenet.arch.costs import min_input_size, network_cost
    from googlenet.errors import GoogLeNetError, NotFound

    model = build_model("bn", classes=["a", "b"], preprocessing=SMALL)
    export_model(model, "safetensors", tmp_path / "m.safetensors")
    loaded = googlenet.load_model(tmp_path / "m.safetensors")
    assert not loaded.training  # eval mode, as torchvision's builders with weights give it
    assert loaded(torch.rand(1, 3, 40, 40)).shape == (1, 2)  # a batch of one: no batch-norm error
    assert not googlenet.googlenet(weights=tmp_path / "m.safetensors").training
    assert googlenet.googlenet(num_classes=2).training  # fresh weights: ready to train
    with pytest.raises(NotFound, match="nonexistent does not exist") as caught:
        googlenet.load_model("nonexistent")
    assert isinstance(caught.value, (GoogLeNetError, FileNotFoundError))
    # Every function that takes a variant takes its name too.
    assert min_input_size("paper") == min_input_size(googlenet.VARIANTS["paper"])
    assert network_cost("bn").total == network_cost(googlenet.VARIANTS["bn"]).total
