"""Every published number a recipe reproduces, checked against the source that prints it.

A source is a table of what it prints (quoted as printed), the value that becomes in our
configuration, and where the configuration holds it. A subject (a recipe; later other
defaults) names the sources it follows. A recipe edited away from a source fails here,
naming the source and the number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from operator import attrgetter
from typing import Any

import pytest
import torch

from googlenet import build_model
from googlenet.arch.table import VARIANTS
from googlenet.data.config import preprocessing
from googlenet.data.transforms import HOWARD_DISTORTIONS, HOWARD_FACTORS, central_crop, sample_crop
from googlenet.detection.proposals import SETTINGS, SearchSetting
from googlenet.detection.rcnn import NMS_IOU
from googlenet.detection.regions import CONTEXT, POSITIVE_IOU
from googlenet.detection.train import DetectConfig
from googlenet.training.assembly import build_optimizer
from googlenet.training.config import TrainConfig, load_recipe

IMAGENET_TRAIN_IMAGES = 1_281_167  # ILSVRC-2012's training set: Caffe's iterations -> epochs


def epochs_of(iterations: int, batch_size: int = 32) -> int:
    """Caffe counts iterations of train_val's batch of 32; our recipes count whole epochs."""
    return round(iterations * batch_size / IMAGENET_TRAIN_IMAGES)


def equal(ours: Any, published: Any) -> bool:
    if isinstance(published, tuple):
        return len(ours) == len(published) and all(map(equal, ours, published))
    if isinstance(published, float):
        return math.isclose(ours, published, rel_tol=1e-9)
    return ours == published


def within(ours: tuple[float, float], published: float) -> bool:
    return ours[0] <= published <= ours[1]


@dataclass(frozen=True)
class Number:
    printed: str  # what the source prints, as it prints it
    value: Any  # the value that is in our configuration
    read: Callable[[Any], Any]  # where the subject (a TrainConfig for a recipe) holds it
    holds: Callable[[Any, Any], bool] = equal  # (ours, value) -> whether they agree


@dataclass(frozen=True)
class Source:
    name: str  # the paper's section, or the published file
    numbers: tuple[Number, ...]


def field(path: str) -> Callable[[TrainConfig], Any]:
    return attrgetter(path)  # "optim.lr"


def dropout(config: TrainConfig) -> float:
    return VARIANTS[config.model.variant].dropout if config.model.dropout is None else config.model.dropout


def aux_dropout(config: TrainConfig) -> float:
    m = config.model
    return VARIANTS[m.variant].aux_dropout if m.aux_dropout is None else m.aux_dropout


def mean_bgr(config: TrainConfig) -> tuple[float, ...]:
    return tuple(reversed(preprocessing(config.data).mean))  # the preset lists RGB


def scale_and_std(config: TrainConfig) -> tuple[float, tuple[float, ...]]:
    p = preprocessing(config.data)
    return p.value_scale, p.std


@cache
def bias_groups(config: TrainConfig) -> tuple[tuple[float, float], ...]:
    """(lr multiple, weight decay) of each optimizer group of biases, as the loop builds them."""
    model = build_model(config.model.variant, num_classes=10)
    biases = {id(p) for name, p in model.named_parameters() if name.endswith(".bias")}
    groups = build_optimizer(model, config, config.optim.lr).param_groups
    return tuple(sorted({(g["lr"] / config.optim.lr, g["weight_decay"]) for g in groups
                         if all(id(p) in biases for p in g["params"])}))


# --- The paper (Szegedy et al. 2015, arXiv:1409.4842v1).

PAPER_TABLE_1 = Source("the paper, Table 1", (
    Number("dropout (40%)", 0.4, dropout),
))

PAPER_SEC_5 = Source("the paper, Sec. 5", (
    Number("the receptive field ... is 224x224", 224, field("data.input_size")),
    Number("the losses of the auxiliary classifiers were weighted by 0.3", 0.3,
           field("model.aux_weight")),
    Number("a dropout layer with 70% ratio of dropped outputs", 0.7, aux_dropout),
))

PAPER_SEC_6 = Source("the paper, Sec. 6", (
    Number("stochastic gradient descent", "sgd", field("optim.optimizer")),
    Number("with 0.9 momentum", 0.9, field("optim.momentum")),
    Number("fixed learning rate schedule (decreasing ... by 4% every 8 epochs)", "step",
           field("optim.schedule")),
    Number("by 4%", 0.96, field("optim.gamma")),
    Number("every 8 epochs", 8.0, field("optim.step_epochs")),
    Number("Polyak averaging [13]", "polyak", field("optim.averaging")),
    Number("size is distributed evenly between 8% and 100% of the image area", (0.08, 1.0),
           field("augment.scale")),
    Number("aspect ratio constrained to the interval [3/4, 4/3]", (3 / 4, 4 / 3),
           field("augment.ratio")),
    Number("bilinear, area, nearest neighbor and cubic interpolation methods with equal "
           "probability", True, field("augment.random_interpolation")),
    Number("Andrew Howard's photometric distortions", "howard", field("augment.photometric")),
))

# Sec. 6 defers to Howard (arXiv:1312.5402, Sec. 2.1.2), who takes the lighting from AlexNet.
HOWARD = Source("Howard, arXiv:1312.5402", (
    Number("brightness, contrast and color ... in a random order", ("brightness", "contrast",
           "saturation"), lambda _: HOWARD_DISTORTIONS),
    Number("a value between 0.5 and 1.5", (0.5, 1.5), lambda _: HOWARD_FACTORS),
    Number("the same lighting noise as AlexNet (std 0.1)", 0.1, field("augment.pca_lighting")),
))

# --- BVLC's Caffe replication (github.com/BVLC/caffe, models/bvlc_googlenet/).

BVLC_TRAIN_VAL = Source("BVLC train_val.prototxt", (
    Number("batch_size: 32", 32, field("optim.batch_size")),
    Number("batch_size: 32 (the batch solver's base_lr is for)", 32,
           field("optim.reference_batch_size")),
    Number("crop_size: 224", 224, field("data.input_size")),
    Number("mirror: true", 0.5, field("augment.hflip")),
    Number("mean_value: 104, mean_value: 117, mean_value: 123 (BGR)", (104.0, 117.0, 123.0),
           mean_bgr),
    Number("no scale: 0-255 values, the mean subtracted", (255.0, (1.0, 1.0, 1.0)), scale_and_std),
    Number("biases: lr_mult: 2, decay_mult: 0", ((2.0, 0.0),), bias_groups),
    Number("loss1/loss, loss2/loss: loss_weight: 0.3", 0.3, field("model.aux_weight")),
    Number("dropout_ratio: 0.4 (main head)", 0.4, dropout),
    Number("dropout_ratio: 0.7 (auxiliary heads)", 0.7, aux_dropout),
))

# The LMDB train_val reads: examples/imagenet/create_imagenet.sh resizes every image to 256x256.
BVLC_CROPS = Source("BVLC train_val.prototxt crop_size 224 of 256x256 images", (
    Number("random 224x224 crops: (224 / 256)^2 of the area", (224 / 256) ** 2,
           field("augment.scale"), within),
    Number("no other augmentation", (0.0, 0.0, 0.0, 0.0, 0.0, False),
           attrgetter("augment.brightness", "augment.contrast", "augment.saturation", "augment.hue",
                      "augment.pca_lighting", "augment.random_interpolation")),
    Number("test phase: the center 224x224 crop", 224 / 256, field("data.eval_crop_ratio")),
))

BVLC_SOLVER = Source("BVLC solver.prototxt", (
    Number("base_lr: 0.01", 0.01, field("optim.lr")),
    Number('lr_policy: "step"', "step", field("optim.schedule")),
    Number("stepsize: 320000", epochs_of(320_000), field("optim.step_epochs")),
    Number("gamma: 0.96", 0.96, field("optim.gamma")),
    Number("max_iter: 10000000", epochs_of(10_000_000), field("optim.epochs")),
    Number("momentum: 0.9", 0.9, field("optim.momentum")),
    Number("weight_decay: 0.0002", 0.0002, field("optim.weight_decay")),
))

# The solver of the published bvlc_googlenet.caffemodel (BVLC's readme.md: 68.7% / 88.9%).
BVLC_QUICK_SOLVER = Source("BVLC quick_solver.prototxt", (
    Number("base_lr: 0.01", 0.01, field("optim.lr")),
    Number('lr_policy: "poly"', "poly", field("optim.schedule")),
    Number("power: 0.5", 0.5, field("optim.power")),
    Number("max_iter: 2400000", epochs_of(2_400_000), field("optim.epochs")),
    Number("momentum: 0.9", 0.9, field("optim.momentum")),
    Number("weight_decay: 0.0002", 0.0002, field("optim.weight_decay")),
))

# --- R-CNN (Girshick et al. 2014, and its code: github.com/rbgirshick/rcnn), the pipeline
# Sec. 8 builds on. The subject is the detection defaults: `googlenet detect train`'s.


@dataclass(frozen=True)
class DetectionDefaults:
    config: DetectConfig
    setting: SearchSetting  # the default Selective Search setting's numbers


def detection_defaults() -> DetectionDefaults:
    config = DetectConfig(data="")
    return DetectionDefaults(config, SETTINGS[config.proposals])


RCNN_PAPER = Source("R-CNN, Sec. 2.1-2.3 and Appendix A", (
    Number("p = 16 pixels of warped image context around the original box (227x227 warp)",
           16 / 227, lambda _: CONTEXT),
    Number("proposals with >= 0.5 IoU overlap with a ground-truth box as positives", 0.5,
           lambda _: POSITIVE_IOU),
    Number("32 positive windows and 96 background windows", 96 / 32,
           field("config.background_ratio")),
    Number("greedy non-maximum suppression (for each class independently) ... IoU overlap ... "
           "0.3", 0.3, lambda _: NMS_IOU),
))

RCNN_SELECTIVE_SEARCH = Source("R-CNN selective_search_boxes.m, fast mode, doubled (Sec. 8)", (
    Number("ks = [50 100], doubled: the superpixel size increased by 2x", (100, 200),
           field("setting.ks")),
    Number("minSize = k", (100, 200), field("setting.min_sizes")),
    Number("minBoxWidth = 20", 20, field("setting.min_box")),
    Number("sigma = 0.8", 0.8, field("setting.sigma")),
))

# --- What follows which source: subject -> (how to read it, the sources it follows).

SUBJECTS: dict[str, tuple[Callable[[], Any], tuple[Source, ...]]] = {
    "paper.yaml": (lambda: load_recipe("paper"),
                   (PAPER_TABLE_1, PAPER_SEC_5, PAPER_SEC_6, HOWARD, BVLC_TRAIN_VAL, BVLC_SOLVER)),
    "bvlc-quick.yaml": (lambda: load_recipe("bvlc-quick"),
                        (PAPER_TABLE_1, PAPER_SEC_5, BVLC_TRAIN_VAL, BVLC_CROPS, BVLC_QUICK_SOLVER)),
    "detect train's defaults": (detection_defaults, (RCNN_PAPER, RCNN_SELECTIVE_SEARCH)),
}

CHECKS = [pytest.param(subject, number, id=f"{subject}: {source.name}: {number.printed}")
          for subject, (_, sources) in SUBJECTS.items()
          for source in sources for number in source.numbers]


@pytest.mark.parametrize(("subject", "number"), CHECKS)
def test_the_published_number_holds(subject: str, number: Number):
    ours = number.read(SUBJECTS[subject][0]())
    assert number.holds(ours, number.value), f"{subject} holds {ours!r}; published: {number.value!r}"


def test_the_epochs_are_the_published_iterations():
    """Whole epochs of ImageNet stand for Caffe's iterations of 32: within 0.1%."""
    assert 2_400_000 * 32 / IMAGENET_TRAIN_IMAGES == pytest.approx(60, rel=1e-3)
    assert 10_000_000 * 32 / IMAGENET_TRAIN_IMAGES == pytest.approx(250, rel=1e-3)
    assert 320_000 * 32 / IMAGENET_TRAIN_IMAGES == pytest.approx(8, rel=1e-3)


@pytest.mark.parametrize("height, width", [(375, 500), (500, 375), (256, 256), (480, 640)])
def test_bvlc_quick_crops_cover_train_vals_share_of_the_image(height, width):
    """train_val's 224x224 of 256x256 covers 76.6% of the image; the recipe's crops do too,
    rarely falling back to the central crop (a band of areas: crops are whole pixels)."""
    augment, generator = load_recipe("bvlc-quick").augment, torch.Generator().manual_seed(0)
    crops = [sample_crop(height, width, augment.scale, augment.ratio, generator) for _ in range(500)]
    areas = [h * w / (height * width) for _, _, h, w in crops]
    assert sum(areas) / len(areas) == pytest.approx((224 / 256) ** 2, abs=0.005)
    fallback = central_crop(height, width, augment.ratio)
    assert sum(crop == fallback for crop in crops) <= 5
