"""A modern detector on a GoogLeNet trunk: torchvision's Faster R-CNN (anchors, region proposal
network, RoI heads with box regression) over a feature pyramid on Inception (3b), (4e) and
(5b), strides 8, 16 and 32, plus torchvision's max-pooled extra level. Only the backbone
adapter is ours; the rest is torchvision's detection code.

The trunk comes from any model source (or fresh weights); its input normalisation becomes the
detector's `image_mean` / `image_std`. With pretrained weights the trunk's batch norms are
frozen (torchvision's practice with small detection batches: training.finetune's
FrozenBatchNorm2d, statistics and scale fixed); fresh ones train.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from googlenet.data.preprocessing import Preprocessing
from googlenet.model.network import GoogLeNet

FPN_LAYERS = ("inception3b", "inception4e", "inception5b")  # strides 8, 16, 32
FPN_CHANNELS = 256
ANCHOR_SIZES = ((32,), (64,), (128,), (256,))  # one size per level (3b, 4e, 5b, pool)
ASPECT_RATIOS = ((0.5, 1.0, 2.0),) * len(ANCHOR_SIZES)
DEFAULT_IMAGE_SIZE = 320  # shorter side; the peer fasterrcnn_mobilenet_v3_large_320_fpn's
# Both detectors run with the peer's low-resolution settings (torchvision's _320 model: 150
# proposals after NMS at test time, proposals scored under 0.05 dropped) and sample 128 RoIs per
# image for the box head in training (torchvision: 512), a quarter of the cost on small data.
SHARED_SETTINGS = {"rpn_pre_nms_top_n_test": 150, "rpn_post_nms_top_n_test": 150,
                   "rpn_score_thresh": 0.05, "box_batch_size_per_image": 128}


class GoogLeNetFPN(nn.Module):
    """GoogLeNet's trunk through (5b) with a feature pyramid (torchvision's BackboneWithFPN,
    with `feature_maps` as the body): image batch -> OrderedDict of 256-channel maps."""

    def __init__(self, trunk: GoogLeNet, bgr: bool = False) -> None:
        super().__init__()
        self.body = trunk
        self.bgr = bgr  # a Caffe-order trunk: flip the channels, which torchvision gives as RGB
        channels = [trunk.plan[i].out_channels for i in self.row_indices(trunk)]
        self.fpn = FeaturePyramidNetwork(channels, FPN_CHANNELS, extra_blocks=LastLevelMaxPool())
        self.out_channels = FPN_CHANNELS

    @staticmethod
    def row_indices(trunk: GoogLeNet) -> list[int]:
        names = [[layer.name for layer in planned.layers] for planned in trunk.plan]
        return [next(i for i, row in enumerate(names) if layer in row) for layer in FPN_LAYERS]

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        if self.bgr:
            x = x.flip(1)
        maps = self.body.feature_maps(x, list(FPN_LAYERS))
        return self.fpn(OrderedDict((str(i), maps[name]) for i, name in enumerate(FPN_LAYERS)))


def normalisation(prep: Preprocessing) -> tuple[list[float], list[float]]:
    """torchvision's (x - mean) / std on [0, 1] input, equal to our x * value_scale - mean,
    divided by std: mean / value_scale and std / value_scale."""
    return ([m / prep.value_scale for m in prep.mean], [s / prep.value_scale for s in prep.std])


def faster_rcnn(trunk: GoogLeNet, prep: Preprocessing, num_classes: int,
                image_size: int = DEFAULT_IMAGE_SIZE) -> FasterRCNN:
    """Faster R-CNN on the trunk; `num_classes` counts the objects' classes (background added)."""
    trunk.fc = nn.Identity()  # the classifiers are not part of a detector
    trunk.dropout = nn.Identity()
    for head in list(trunk.aux_taps.values()):
        delattr(trunk, head)
    trunk.aux_taps = {}
    backbone = GoogLeNetFPN(trunk, bgr=prep.channel_order == "BGR")
    mean, std = normalisation(prep)
    return FasterRCNN(
        backbone, num_classes=num_classes + 1,
        rpn_anchor_generator=AnchorGenerator(ANCHOR_SIZES, ASPECT_RATIOS),
        box_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], output_size=7, sampling_ratio=2),
        min_size=image_size, max_size=2 * image_size, image_mean=mean, image_std=std, **SHARED_SETTINGS)


def mobilenet_peer(num_classes: int, image_size: int = DEFAULT_IMAGE_SIZE) -> nn.Module:
    """torchvision's fasterrcnn_mobilenet_v3_large_320_fpn with no pretrained weights at all
    (weights=None, weights_backbone=None): the same kind of start as a fresh GoogLeNet trunk."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    return fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=num_classes + 1,
        min_size=image_size, max_size=2 * image_size, **SHARED_SETTINGS)


@torch.no_grad()
def detect_batch(model: nn.Module, images: list[Tensor]) -> list[dict[str, Tensor]]:
    model.eval()
    return model(images)
