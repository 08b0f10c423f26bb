"""`googlenet explain`: maps that mean something on cases whose answer is known, and the command."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from trained_checks import attribution_inside

from googlenet.cli.main import main
from googlenet.visual.explain import explain, gradcam, model_view, overlay, resolve_class

pytest.importorskip("captum", reason="googlenet explain needs Captum (pip install 'googlenet[explain]')")


@pytest.mark.parametrize("corner", [(0, 0), pytest.param((32, 32), marks=pytest.mark.slow)])
def test_the_map_lies_on_a_digit_pasted_on_a_blank_canvas(digits_model, corner):
    """Integrated gradients from black: the canvas is black, so nearly all the mass must lie on the
    pasted digit, wherever it is put (the map is aligned with the image it is drawn over). A quarter
    of the picture holds more than 80% of the mass, where a map blind to the digit would put 25%
    there (threshold_spread.md: 0.90 was the lowest of 8 runs)."""
    model, artifact = digits_model
    inside = attribution_inside(model, artifact, corner)
    assert inside > 0.8, inside


def test_gradcam_on_the_last_layer_is_the_class_activation_map(digits_model, pasted_digits):
    """Before global pooling and the linear classifier, Grad-CAM's channel weights are the class's
    classifier weights over H*W: the map is Zhou et al.'s CAM (2016), computed here by hand."""
    model, artifact = digits_model
    canvas, _ = pasted_digits(5, 0, 32)
    _, x = model_view(canvas, artifact.preprocessing.with_size(64))
    with torch.no_grad():
        features = model.feature_maps(x, ["5b"])["5b"][0]  # C x h x w
        top = int(model(x).argmax())
        cam = torch.einsum("c,chw->hw", model.fc.weight[top], features).clamp(min=0)
    ours = gradcam(model, model.inception5b, x, top)[0, 0]
    assert ours.shape == cam.shape == (2, 2) and cam.max() > 0
    assert torch.allclose(ours * cam.numel(), cam, rtol=1e-4, atol=1e-5)


def test_a_class_is_named_by_name_or_index():
    classes = ("cat", "dog", "7")
    assert resolve_class(None, classes, torch.tensor([0.1, 0.9, 0.0])) == 1
    assert resolve_class("dog", classes, None) == 1 and resolve_class("2", classes, None) == 2
    assert resolve_class(0, classes, None) == 0
    with pytest.raises(ValueError, match="no class 'eleven': give a class name or an index 0..2"):
        resolve_class("eleven", classes, None)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_maps_of_any_trunk_layer_cover_the_view(digits_model, pasted_digits, method):
    model, artifact = digits_model
    canvas, _ = pasted_digits(0, 16, 16)
    for layer in ("conv3", "4e"):
        result = explain(model, canvas, artifact.classes, artifact.preprocessing, layer=layer,
                         method=method, target="7")
        assert result.class_name == "7" and result.layer == model.layer_name(layer)
        assert result.heatmap.shape == (32, 32) and 0 <= result.heatmap.min() <= result.heatmap.max() <= 1
    picture = overlay(result)
    assert picture.size == (320, 320) and np.asarray(picture).std() > 0


def test_the_command_writes_one_picture_per_image_and_names_problems(digits_run, pasted_digits, tmp_path,
                                                                     capsys):
    canvas, _ = pasted_digits(1, 0, 0)
    canvas.save(tmp_path / "digit.png")
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    out = tmp_path / "maps"
    argv = ["explain", str(tmp_path / "digit.png"), str(tmp_path / "broken.png"), "-m",
            str(digits_run.run_dir), "--output-dir", str(out), "--layer", "3b"]
    assert main(argv) == 1  # one image failed
    captured = capsys.readouterr()
    written = out / "digit-gradcam-inception3b.png"
    assert captured.out.startswith(f"wrote {written}: ") and "broken.png: not an image" in captured.err
    assert Image.open(written).size[0] > 300
    assert main(argv[:2] + argv[3:]) == 2 and "exists; replace it with --force" in capsys.readouterr().err
    assert main(argv[:2] + argv[3:] + ["--layer", "9z"]) == 2
    assert "no layer '9z'; choose from conv1" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_both_variants_are_explained(odd_artifact, odd_images, method):
    from googlenet.artifact.build import model_from_artifact

    model = model_from_artifact(odd_artifact).eval()
    # classes and preprocessing from the model's record (model_from_artifact attaches it)
    result = explain(model, Image.open(odd_images[0]), layer="3b", method=method, target="dog")
    assert result.class_name == "dog" and result.heatmap.shape == (40, 40) and result.view.size == (40, 40)
