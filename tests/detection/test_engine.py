"""Faster R-CNN on the training package's engine: exact resume inside an epoch, the fixed
thread count, the device, the frozen batch norm, and checkpoints of kind detector."""

from __future__ import annotations

import json

import pytest
import torch

from googlenet import build_model
from googlenet.artifact.files import DETECTOR
from googlenet.detection.train import DetectConfig, train_detection, training_device
from googlenet.errors import ModelSourceError
from googlenet.runtime.threads import threads_changed
from googlenet.training.checkpoint import load_checkpoint
from googlenet.training.finetune import FrozenBatchNorm2d, freeze_batch_norms
from googlenet.training.runs import read_metrics
from googlenet.weights.sources import load_artifact


def frcnn(coco, run, **values) -> DetectConfig:
    return DetectConfig(data=str(coco), method="faster-rcnn", split=None, output=str(run), epochs=2,
                        batch_size=2, image_size=64, threads=1, **values)


def test_a_resumed_faster_rcnn_ends_bit_identical(coco, tmp_path):
    """3 images in batches of 2: stopped after step 1 (inside epoch 1) and resumed, the run ends
    with the uninterrupted run's weights, optimizer state, schedule and RNG."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert train_detection(frcnn(coco, whole)).stop_reason == "completed"
    assert train_detection(frcnn(coco, parts), max_steps=1).stop_reason == "max_steps"
    assert load_checkpoint(parts / "last.pt", DETECTOR)["progress"]["batch"] == 1
    assert train_detection(DetectConfig(data="", threads=1), resume=parts).stop_reason == "completed"
    a, b = (load_checkpoint(run / "last.pt", DETECTOR) for run in (whole, parts))
    assert a["detector"].keys() == b["detector"].keys()
    for key, tensor in a["detector"].items():
        assert torch.equal(tensor, b["detector"][key]), key
    assert a["scheduler"] == b["scheduler"] and a["progress"]["step"] == b["progress"]["step"] == 4
    for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(x["momentum_buffer"], y["momentum_buffer"])
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert [(r["epoch"], r["complete"]) for r in read_metrics(parts)] == [(1, False), (1, True), (2, True)]
    assert [r["images"] for r in read_metrics(parts)] == [2, 1, 3]  # the resumed epoch skipped a batch


def test_threads_are_fixed_recorded_and_a_change_is_said(coco, tmp_path):
    run = tmp_path / "run"
    train_detection(frcnn(coco, run), max_steps=1)
    assert json.loads((run / "detection.json").read_text())["threads"] == 1
    assert load_checkpoint(run / "last.pt", DETECTOR)["progress"]["threads"] == 1
    messages: list[str] = []
    before = torch.get_num_threads()
    train_detection(DetectConfig(data="", threads=2), resume=run, on_message=messages.append)
    assert torch.get_num_threads() == before  # the caller's setting is left as it was
    assert threads_changed(1, 2) in messages
    assert threads_changed(1, 2).startswith("intra-op threads changed from 1 to 2: the run continues")
    assert [r["threads"] for r in read_metrics(run)] == [1, 2, 2]


def test_auto_device_is_cuda_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert training_device(DetectConfig(data="")) == torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert training_device(DetectConfig(data="")) == torch.device("cpu")


def test_a_frozen_batch_norm_keeps_its_statistics_and_scale_in_train_mode():
    torch.manual_seed(0)
    trunk = freeze_batch_norms(build_model("bn", num_classes=1, aux_logits=False))
    bn = trunk.conv1.bn
    assert isinstance(bn, FrozenBatchNorm2d) and not any(p.requires_grad for p in bn.parameters())
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    trunk.train()
    trunk(torch.randn(2, 3, 64, 64) * 3 + 1)
    assert not bn.training
    for key, value in trunk.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_old_frozen_batch_norm_state_dicts_load():
    """Detection checkpoints before one FrozenBatchNorm2d held torchvision's (no
    num_batches_tracked): they still load."""
    from torchvision.ops import FrozenBatchNorm2d as TorchvisionFrozen

    old = TorchvisionFrozen(8)
    old.running_mean.fill_(0.5)
    holder, new = torch.nn.Sequential(old), torch.nn.Sequential(FrozenBatchNorm2d(8))
    new.load_state_dict(holder.state_dict())
    assert torch.equal(new[0].running_mean, old.running_mean)


def test_a_detection_checkpoint_is_no_classifier(coco, tmp_path):
    run = tmp_path / "run"
    train_detection(frcnn(coco, run), max_steps=1)
    assert torch.load(run / "last.pt", weights_only=True)["kind"] == DETECTOR
    for source in (run, run / "last.pt"):
        with pytest.raises(ModelSourceError, match="is a detection run .faster-rcnn on GoogLeNet.: use "
                           "googlenet detect predict"):
            load_artifact(source)
    with pytest.raises(ModelSourceError, match="is a detection run"):
        load_checkpoint(run / "last.pt")  # googlenet train --resume of it


def test_old_detection_checkpoints_are_recognised(tmp_path):
    from googlenet.artifact.files import CHECKPOINT_FORMAT, artifact_from_checkpoint

    old = {"format": CHECKPOINT_FORMAT, "version": 2, "detector": {}, "record": {"method": "faster-rcnn",
                                                                              "variant": "bn"}}
    with pytest.raises(ModelSourceError, match="old.pt is a detection run"):
        artifact_from_checkpoint(old, "old.pt")
