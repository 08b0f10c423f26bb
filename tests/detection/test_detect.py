"""The detectors end to end on tiny data, through the commands: train (and resume), evaluate,
predict; Faster R-CNN's GoogLeNet backbone; the trunk from any model source."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from PIL import Image

from googlenet import build_model
from googlenet.cli.main import main
from googlenet.data.preprocessing import preset
from googlenet.detection.data import load_detection
from googlenet.detection.detector import load_detector, read_record
from googlenet.detection.evaluate import COLOURS, annotate, evaluate_detector
from googlenet.detection.frcnn import GoogLeNetFPN, faster_rcnn, normalisation
from googlenet.detection.metrics import Detections
from googlenet.detection.train import DetectConfig, train_detection
from googlenet.training.runs import read_metrics
from googlenet.weights.sources import load_artifact


@pytest.mark.parametrize("variant", ["bn", "paper"])
def test_the_backbone_is_a_pyramid_over_3b_4e_5b(variant):
    trunk = build_model(variant, num_classes=1, aux_logits=False)
    features = GoogLeNetFPN(trunk)(torch.rand(1, 3, 64, 96))
    assert isinstance(features, OrderedDict) and list(features) == ["0", "1", "2", "pool"]
    assert [tuple(f.shape[-2:]) for f in features.values()] == [(8, 12), (4, 6), (2, 3), (1, 2)]
    assert all(f.shape[1] == 256 for f in features.values())


def test_caffe_normalisation_becomes_torchvision_mean_and_std():
    mean, std = normalisation(preset("caffe"))
    assert mean == pytest.approx([123 / 255, 117 / 255, 104 / 255]) and std == pytest.approx([1 / 255] * 3)


def test_faster_rcnn_trains_and_detects_on_a_googlenet_trunk():
    model = faster_rcnn(build_model("bn", num_classes=1, aux_logits=False), preset("imagenet"), 2, 64)
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])}]
    losses = model.train()([torch.rand(3, 64, 80)], targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    assert model.backbone.body.inception3b.branch1.conv.weight.grad is not None
    output = model.eval()([torch.rand(3, 64, 80)])[0]
    assert set(output) == {"boxes", "scores", "labels"}


def test_rcnn_train_resume_evaluate_predict(voc, tmp_path, capsys):
    run = tmp_path / "rcnn"
    common = ["--data", str(voc), "--input-size", "32", "--cache-dir", str(tmp_path / "cache"),
              "--device", "cpu"]
    assert main(["detect", "train", *common, "--output-dir", str(run), "--epochs", "1",
                 "--proposals", "opencv-fast", "--all-background"]) == 0
    assert read_record(run)["method"] == "rcnn" and (run / "best.pt").is_file()
    regions = json.loads((run / "regions" / "train" / "regions.json").read_text())
    assert regions["config"]["all_background"] and regions["config"]["setting"] == "opencv-fast"
    assert {p.name for p in (run / "regions" / "train").iterdir()} >= {"__background__", "bar", "square"}
    assert main(["detect", "train", *common, "--output-dir", str(run)]) == 2  # never over a run
    assert "already holds a detection run" in capsys.readouterr().err

    capsys.readouterr()
    assert main(["detect", "evaluate", "-m", str(run), "--format", "json"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert {"map", "ap50", "ap75", "voc_ap50", "images_per_second"} <= set(values)
    assert values["images"] == 1 and 0.0 <= values["map"] <= 1.0 and set(values["voc_ap50"]) <= {"square"}
    assert main(["detect", "evaluate", "-m", str(run), "--split", "all"]) == 0
    text = capsys.readouterr()
    assert "COCO mAP@[.5:.95]" in text.out and "3 images" in text.err

    out = tmp_path / "pictures"
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    images = [str(voc / "images" / "a.png"), str(tmp_path / "broken.png")]
    code = main(["detect", "predict", *images, "-m", str(run), "--output-dir", str(out), "--min-score", "0"])
    listed = json.loads(capsys.readouterr().out)
    assert code == 1 and (out / "a.detections.png").is_file()  # the broken file fails alone
    assert listed[0]["file"].endswith("a.png") and all(
        set(d) == {"class", "score", "box"} for d in listed[0]["detections"])
    assert "error" in listed[1]
    assert main(["detect", "predict", images[0], "-m", str(run), "--output-dir", str(out)]) == 2
    assert "exists; replace it with --force" in capsys.readouterr().err


def test_rcnn_region_classifier_starts_from_a_googlenet_train_run(voc, digits_run, tmp_path):
    """Sec. 8's region classifier fine-tuned from a classifier run: its trunk, new classes."""
    run = tmp_path / "rcnn"
    config = DetectConfig(data=str(voc), model=str(digits_run.run_dir), output=str(run), epochs=1,
                          input_size=32, cache_dir=None, device="cpu",
                          train_overrides={"pretrained_lr_scale": 0.0})  # only the new classifier learns
    assert train_detection(config).stop_reason == "completed"
    assert read_record(run)["trunk"] == str(digits_run.run_dir)
    start, tuned = load_artifact(digits_run.run_dir), load_artifact(run)
    assert set(tuned.classes) == {"__background__", "bar", "square"} and tuned.variant == start.variant
    name = "inception4e.branch2.1.conv.weight"
    assert torch.equal(tuned.state_dict[name], start.state_dict[name])  # the run's trunk
    assert tuned.state_dict["fc.weight"].shape[0] == 3  # the classifier replaced for the regions


@pytest.mark.slow
def test_rcnn_resumes(voc, tmp_path):
    run = tmp_path / "rcnn"
    config = DetectConfig(data=str(voc), output=str(run), epochs=1, input_size=32, cache_dir=None)
    assert train_detection(config).stop_reason == "completed"
    assert train_detection(DetectConfig(data="", epochs=2), resume=run).stop_reason == "completed"
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2]


def test_faster_rcnn_from_a_weights_file(coco, tmp_path):
    trunk = build_model("bn", num_classes=3, aux_logits=False)
    torch.nn.init.constant_(trunk.inception4e.branch1.conv.weight, 0.125)
    weights = tmp_path / "trunk.pth"
    torch.save(trunk.state_dict(), weights)
    run = tmp_path / "frcnn"
    config = DetectConfig(data=str(coco), method="faster-rcnn", split=None, model=str(weights),
                          preprocess="inception", output=str(run), epochs=2, batch_size=2, image_size=64)
    result = train_detection(config, max_steps=1)
    assert result.stop_reason == "max_steps"
    record = read_record(run)
    assert record["variant"] == "bn" and record["frozen_batch_norm"]
    assert record["preprocessing"]["mean"] == [0.5] * 3
    detector = load_detector(run)
    body = detector.model.backbone.body
    assert torch.all(body.inception4e.branch1.conv.weight == 0.125)  # the trunk's weights, frozen BN kept


@pytest.mark.slow
def test_faster_rcnn_resumes(coco, tmp_path):
    run = tmp_path / "frcnn"
    config = DetectConfig(data=str(coco), method="faster-rcnn", split=None, output=str(run), epochs=2,
                          batch_size=2, image_size=64)
    assert train_detection(config, max_steps=1).stop_reason == "max_steps"
    resumed = train_detection(DetectConfig(data=""), resume=run)
    assert resumed.stop_reason == "completed"
    assert [r["epoch"] for r in read_metrics(run)] == [1, 1, 2] and not read_metrics(run)[0]["complete"]
    scores = evaluate_detector(load_detector(run), load_detection(coco))
    assert scores.images == 3 and 0.0 <= scores.coco.ap50 <= 1.0


def test_budgets_fit_the_schedule_and_the_epochs():
    from googlenet.detection.train import epochs_for_budget
    from googlenet.training.schedule import warmup_cosine

    assert epochs_for_budget(60.0, regions=1000, images_per_second=50.0) == 3
    assert epochs_for_budget(1.0, regions=1000, images_per_second=50.0) == 1  # at least one
    assert warmup_cosine(0, total_steps=100, warmup_steps=10) == pytest.approx(0.001)  # from 0.1%
    assert warmup_cosine(50, total_steps=100, warmup_steps=10) == pytest.approx(0.5)  # over the steps
    assert warmup_cosine(20, total_steps=100, warmup_steps=10, progress=0.5) == pytest.approx(0.5)
    assert warmup_cosine(20, total_steps=100, warmup_steps=10, progress=1.5) == pytest.approx(0.0)


def test_train_images_skip_unreadable_files(voc):
    from googlenet.detection.loop import TrainImages

    (voc / "images" / "a.png").write_bytes(b"")
    images = TrainImages(load_detection(voc), size=48, seed=0)
    assert len(images) == 2 and "a.png" in images.skipped[0] and "empty file" in images.skipped[0]
    image, target = images[0]
    assert min(image.shape[-2:]) == 48 and target["labels"].min() >= 1  # 0 is background
    assert (target["boxes"][:, 2] <= image.shape[-1]).all()


def test_proposals_command_prints_recall(voc, capsys):
    assert main(["detect", "proposals", "--data", str(voc), "--setting", "opencv-fast",
                 "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["setting"] == "opencv-fast" and row["objects"] == 4 and row["recall"]["0.5"] == 1.0


def test_the_annotated_label_grows_with_the_picture():
    """A label drawn at a fixed size is a smudge on a 4000-pixel photograph."""
    def label_height(side: int) -> int:
        image = Image.new("RGB", (side, side), (128, 128, 128))
        box = np.array([[side / 4, side / 4, side * 3 / 4, side * 3 / 4]], np.float32)
        drawn = annotate(image, Detections(box, np.array([0.9]), np.array([0])), ["raccoon"])
        column = np.asarray(drawn)[:, side // 4 + side // 100 + 4]  # inside the box, under its label
        return int(np.all(column == COLOURS[0], axis=1).sum())

    small, large = label_height(300), label_height(1200)
    assert small >= 5 and large >= 3 * small
