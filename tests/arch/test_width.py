"""Sec. 7's "wider version" of the network: every filter count of the table scaled, the costs,
`summary`, the model, its artifact and a training run following the one table."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from googlenet import build_model
from googlenet.arch.table import AUX, TABLE_1, ConvRow, InceptionRow, widened
from googlenet.cli.main import main
from googlenet.errors import ModelSourceError

COUNTS = ("c1x1", "c3x3_reduce", "c3x3", "c5x5_reduce", "c5x5", "pool_proj")


def test_every_filter_count_is_scaled_and_nothing_else():
    assert widened(TABLE_1, 1) is TABLE_1
    for printed, wide in zip(TABLE_1, widened(TABLE_1, 1.5)):
        if isinstance(printed, InceptionRow):
            assert [getattr(wide, c) for c in COUNTS] == [round(getattr(printed, c) * 1.5)
                                                          for c in COUNTS]
        elif isinstance(printed, ConvRow):
            assert wide.out_channels == round(printed.out_channels * 1.5)
            assert wide.reduce == (round(printed.reduce * 1.5) if printed.reduce else None)
        else:
            assert wide == printed
        assert wide.printed == printed.printed  # the paper's figures stay the paper's
    model = build_model("paper", width=1.5)
    assert model.aux1.conv.conv.out_channels == AUX.conv_channels  # Sec. 5's heads as printed
    assert model.fc.in_features == round(1024 * 1.5)


def test_a_wide_model_round_trips_through_its_artifact(tmp_path):
    from googlenet.artifact.build import model_from_artifact
    from googlenet.artifact.files import save_safetensors
    from googlenet.artifact.record import Artifact
    from googlenet.data.preprocessing import preset
    from googlenet.weights.sources import load_artifact

    torch.manual_seed(0)
    model = build_model("bn", num_classes=3, aux_logits=False, width=0.5).eval()
    artifact = Artifact("bn", ("a", "b", "c"), preset("imagenet"), width=0.5,
                        state_dict=model.state_dict())
    loaded = load_artifact(save_safetensors(artifact, tmp_path / "wide.safetensors"))
    assert loaded.width == 0.5
    again = model_from_artifact(loaded).eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(again(x), model(x))
    narrow = dataclasses.replace(loaded, width=1.0)
    with pytest.raises(ModelSourceError, match="does not fit"):
        model_from_artifact(narrow)  # the width is part of what the weights are


def test_train_and_summary_take_a_width(tmp_path, capsys):
    from googlenet.inference.predictor import Predictor

    run = tmp_path / "run"
    assert main(["train", "--output-dir", str(run), "--variant", "bn", "--width", "0.5", "--epochs", "1",
                 "--batch-size", "256", "--max-steps", "1", "--workers", "0", "--quiet",
                 "--no-aux-logits"]) == 0
    predictor = Predictor.load(run / "last.pt")
    assert predictor.artifact.width == 0.5
    assert predictor.backend.model.fc.in_features == 512
    capsys.readouterr()
    assert main(["summary", "--width", "1.5"]) == 0
    out = capsys.readouterr().out
    table = out.split("\n\n")[1]
    assert "width 1.5" in out and "not compared" in out and not table.rstrip().endswith("*")
    assert all(not line.rstrip().endswith("*") for line in table.splitlines())
    assert main(["train", "--width", "0", "--output-dir", str(tmp_path / "no")]) == 2
    assert "model.width must be in (0, 16], got 0.0" in capsys.readouterr().err
