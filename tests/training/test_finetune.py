"""Fine-tuning (freezing, per-group learning rates, `train -m`) and feature extraction."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from safetensors.torch import load_file

from googlenet import build_model, load_model
from googlenet.artifact.files import save_safetensors
from googlenet.artifact.record import Artifact
from googlenet.cli.main import main
from googlenet.data.config import preprocessing
from googlenet.data.digits import digits_splits
from googlenet.data.preprocessing import preset
from googlenet.data.splits import load_datasets
from googlenet.errors import ConfigError
from googlenet.inference.predictor import Predictor
from googlenet.training.checkpoint import load_checkpoint
from googlenet.training.config import load_recipe, with_overrides
from googlenet.training.finetune import FrozenBatchNorm2d, freeze_through, parameter_groups
from googlenet.training.loop import train


@pytest.fixture(scope="module")
def bn_weights(tmp_path_factory):
    """Weights of the bn variant with 1000 classes and torchvision's preprocessing, as
    `googlenet weights convert` writes them."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "bn.safetensors"
    artifact = Artifact("bn", tuple(str(i) for i in range(1000)), preset("inception"),
                        state_dict=build_model("bn").state_dict())
    return save_safetensors(artifact, path)


def sgd_step(model, lr=0.1):
    optimizer = torch.optim.SGD(parameter_groups(model, lr, 0.0), lr=lr)
    model.train()
    logits, aux = model.forward_train(torch.randn(4, 3, 64, 64))
    loss = F.cross_entropy(logits, torch.tensor([0, 1, 2, 0])) + sum(
        0.3 * F.cross_entropy(a, torch.tensor([0, 1, 2, 0])) for a in aux)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_frozen_rows_do_not_change_after_a_step(bn_weights):
    model = load_model(bn_weights, num_classes=3)
    frozen = freeze_through(model, "4e")
    assert frozen[0] == "conv1" and frozen[-1] == "inception4e"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sgd_step(model)
    after = model.state_dict()
    for key in before:
        if key.split(".")[0] in frozen:  # weights and batch-norm statistics alike
            assert torch.equal(before[key], after[key]), key
    trained = "inception5a.branch1.conv.weight"
    assert not torch.equal(before[trained], after[trained])
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    assert isinstance(model.conv1.bn, FrozenBatchNorm2d) and not model.conv1.bn.training


def test_freeze_points_and_errors(bn_weights):
    model = build_model("bn", num_classes=3)
    assert freeze_through(model, "backbone")[-1] == "inception5b"
    assert not any(p.requires_grad for n, p in model.named_parameters() if not n.startswith(("fc", "aux")))
    with pytest.raises(ValueError, match="names no row"):
        freeze_through(build_model("bn", num_classes=3), "6a")


def test_pretrained_layers_get_the_scaled_learning_rate():
    model = build_model("bn", num_classes=3)
    groups = parameter_groups(model, lr=0.1, weight_decay=1e-4, pretrained_lr_scale=0.1)
    assert groups[0]["lr"] == 0.1  # the classifiers first: group 0 is the one logged
    by_id = {id(p): g for g in groups for p in g["params"]}
    assert by_id[id(model.fc.weight)]["lr"] == 0.1 and by_id[id(model.aux1.fc2.weight)]["lr"] == 0.1
    assert by_id[id(model.conv1.conv.weight)]["lr"] == pytest.approx(0.01)
    assert by_id[id(model.conv1.bn.weight)]["weight_decay"] == 0.0
    assert by_id[id(model.conv1.conv.weight)]["weight_decay"] == 1e-4
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_biases_train_at_bias_lr_scale_without_weight_decay():
    model = build_model("paper", num_classes=3)
    groups = parameter_groups(model, lr=0.01, weight_decay=2e-4, bias_lr_scale=2.0)  # BVLC
    by_id = {id(p): g for g in groups for p in g["params"]}
    bias, weight = by_id[id(model.conv1.conv.bias)], by_id[id(model.conv1.conv.weight)]
    assert (bias["lr"], bias["weight_decay"]) == (pytest.approx(0.02), 0.0)
    assert (weight["lr"], weight["weight_decay"]) == (0.01, 2e-4)
    assert groups[0]["lr"] == 0.01  # the base rate is the one logged


def test_train_with_weights_fine_tunes_a_new_classifier(bn_weights, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "-m", str(bn_weights), "--data", "digits", "--input-size", "32",
                 "--augment", "crop-flip", "--epochs", "1", "--batch-size", "64", "--freeze", "4e",
                 "--workers", "0", "--output-dir", str(run), "--quiet", "--warmup-epochs", "0"])
    assert code == 0
    out = capsys.readouterr().out
    assert "fine-tuning from" in out and "frozen through 4e" in out
    config = (run / "config.yaml").read_text()
    assert "weights:" in config and "variant: bn" in config and "- 0.5" in config  # its normalisation
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["model"]["fc.weight"].shape == (10, 1024)
    pretrained = load_file(bn_weights)
    assert torch.equal(state["model"]["inception4e.branch1.conv.weight"],
                       pretrained["inception4e.branch1.conv.weight"])


def digits_config(run, **overrides):
    return with_overrides(load_recipe("digits"), {"output": str(run), "epochs": "1", "quiet": True,
                                                  "workers": "0", "aux_logits": False, **overrides})


def test_a_trained_model_carries_its_runs_record(tmp_path):
    config = digits_config(tmp_path / "run", variant="bn")
    result = train(config, max_steps=1)
    model = result.model
    assert model.classes == tuple(load_datasets(config.data, config.augment, 0).classes)  # the data's
    assert model.artifact.preprocessing == preprocessing(config.data)
    assert model.artifact.provenance.config["optim"]["epochs"] == 1
    assert model.artifact.provenance.averaged  # the digits recipe averages: these weights are
    predictor = Predictor.from_model(model)  # nothing else to say
    assert (predictor.classes, predictor.preprocessing) == (model.classes, preprocessing(config.data))


def test_train_starts_from_a_model_in_memory(tmp_path):
    torch.manual_seed(0)
    start = build_model("bn", num_classes=10, aux_logits=False, preprocessing=preset("inception"))
    before = {k: v.clone() for k, v in start.state_dict().items()}
    run = tmp_path / "run"
    result = train(digits_config(run, freeze="4e", variant="bn"), weights=start, max_steps=1)
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    assert recorded["model"]["weights"] == start.artifact.source and recorded["model"]["variant"] == "bn"
    assert result.model.artifact.preprocessing.mean == preset("inception").mean  # as the weights expect
    name = "inception4e.branch1.conv.weight"  # frozen: still the model's
    assert torch.equal(load_checkpoint(run / "last.pt")["model"][name], before[name])
    assert all(torch.equal(v, before[k]) for k, v in start.state_dict().items())  # left as it was
    with pytest.raises(ConfigError, match="starting weights are given twice"):
        train(digits_config(tmp_path / "other", weights="imagenet"), weights=start)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    _, val = digits_splits()
    for i in range(5):
        Image.fromarray(val.images[i].permute(1, 2, 0).numpy()).resize((40, 40)).save(root / f"{i}.png")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def test_features_to_npy_and_parquet(bn_weights, image_folder, tmp_path, capsys):
    out = tmp_path / "f.npy"
    code = main(["features", str(image_folder), "-m", str(bn_weights), "--output", str(out),
                 "--workers", "0"])
    assert code == 1  # one file failed; the others are written
    captured = capsys.readouterr()
    assert "broken.jpg: error" in captured.err
    assert f"wrote {out}: 5 images" in captured.out and "f.files.txt" in captured.out
    values = np.load(out)
    files = (tmp_path / "f.files.txt").read_text().split()
    assert values.shape == (5, 1024) and len(files) == 5 and files[0].endswith("0.png")
    model = load_model(bn_weights).eval()
    assert np.isfinite(values).all() and values.std() > 0
    import pyarrow.parquet as pq
    code = main(["features", *(str(image_folder / f"{i}.png") for i in range(5)), "-m",
                 str(bn_weights), "--output", str(tmp_path / "f.parquet"), "--workers", "0",
                 "--layer", "4e"])
    table = pq.read_table(tmp_path / "f.parquet")
    assert code == 0 and table.num_rows == 5 and len(table["features"][0].as_py()) == 832
    assert table.schema.metadata[b"layer"] == b"inception4e"
    with torch.no_grad():
        maps = model.feature_maps(torch.randn(1, 3, 224, 224), ["conv3", "inception4e"])
    assert maps["conv3"].shape == (1, 192, 56, 56) and maps["inception4e"].shape == (1, 832, 14, 14)


def test_features_errors(bn_weights, image_folder, tmp_path, capsys):
    assert main(["features", str(image_folder), "-m", str(bn_weights),
                 "--output", str(tmp_path / "f.csv")]) == 2
    assert ".npy or .parquet" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["features", str(image_folder), "--output", str(tmp_path / "f.npy")])
    assert "-m/--model" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no layer '9z'"):
        build_model("bn").feature_maps(torch.randn(1, 3, 64, 64), ["9z"])
