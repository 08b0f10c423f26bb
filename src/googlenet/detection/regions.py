"""Warped proposal crops labelled by their overlap with the ground truth: R-CNN's fine-tuning
data (Girshick et al. 2014), which the paper's detector follows (Sec. 8).

Each proposal is widened for context (R-CNN's 16 pixels around a 227-pixel warp; what falls
outside the image is the mean pixel of the classifier's preprocessing, as R-CNN pads with the
image mean), warped to a square regardless of its aspect ratio, and labelled by its best IoU
with a ground-truth box:
at least 0.5, that box's class; below 0.5, background. Per image, every ground-truth box
and up to `positives` object proposals are kept, with `background_ratio` (3, R-CNN's 32 objects
to 96 background in each batch) times as many background proposals drawn at random (at least
`min_background`); or, with `all_background`, every background proposal, the object crops
repeated so that an epoch keeps that ratio: R-CNN's own sampling, which draws each batch's 32
objects and 96 background from all of an image set's windows. The crops are written as class
folders, one `__background__`, so that `googlenet train` fine-tunes the region classifier like
any classifier.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.ops import box_iou, roi_align
from torchvision.transforms.functional import pil_to_tensor

from googlenet.data.images import BadImage, decode_image, read_file
from googlenet.data.preprocessing import IMAGENET_MEAN, Preprocessing
from googlenet.detection.data import DetectionData, Sample
from googlenet.detection.proposals import DEFAULT_MAX_SIDE, DEFAULT_SETTING, ProposalCache, proposals_for
from googlenet.runtime.files import atomic_path, write_atomically

BACKGROUND = "__background__"
CONTEXT = 16 / 227  # R-CNN: 16 pixels of context around a 227-pixel warp, each side
RGB = tuple[float, float, float]
POSITIVE_IOU = 0.5  # R-CNN's fine-tuning threshold


@dataclass(frozen=True)
class RegionConfig:
    setting: str = DEFAULT_SETTING  # Selective Search setting (proposals.SETTINGS)
    max_side: int = DEFAULT_MAX_SIDE
    warp_size: int = 64  # pixels of the square crops written (the classifier's resize size)
    context: float = CONTEXT
    fill: RGB = IMAGENET_MEAN  # context beyond the image: the classifier's mean pixel (mean_pixel)
    positives: int = 16  # object proposals per image at most (ground-truth boxes come on top)
    background_ratio: float = 3.0
    min_background: int = 8
    all_background: bool = False  # every background proposal; object crops repeated to the ratio
    seed: int = 0


@dataclass
class RegionCounts:
    images: int = 0
    objects: int = 0
    background: int = 0
    skipped: list[str] | None = None


def folder_name(name: str) -> str:
    """A class name as a folder name (no path separators or leading dots)."""
    return re.sub(r"[/\\\x00]", "_", name).lstrip(".") or "_"


def mean_pixel(preprocessing: Preprocessing) -> RGB:
    """The RGB colour in [0, 1] that `preprocessing` normalises to zero: its mean."""
    scale, shift = preprocessing.affine()
    mean = tuple(-b / a for a, b in zip(scale, shift))  # x * scale + shift = 0
    return mean[::-1] if preprocessing.channel_order == "BGR" else mean  # type: ignore[return-value]


def with_context(boxes: Tensor, context: float) -> Tensor:
    """Boxes widened so that `context` of the warped crop, on each side, is surrounding pixels
    (past the image's edge where the box is near it, as in R-CNN's rcnn_im_crop.m)."""
    if context <= 0:
        return boxes
    grow = 1.0 / (1.0 - 2.0 * context)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) / 2 * grow
    return torch.cat([centre - half, centre + half], dim=1)


def warp(image: Tensor, boxes: Tensor, size: int, context: float, fill: RGB) -> Tensor:
    """Float 3 x H x W in [0, 1], K x 4 boxes -> K x 3 x size x size: each region (with
    context) warped to a square, bilinearly (RoIAlign, adaptive sampling); what lies outside
    the image is `fill` (R-CNN: the mean, zero once subtracted)."""
    if len(boxes) == 0:
        return image.new_zeros((0, 3, size, size))
    mean = torch.tensor(fill, dtype=image.dtype).reshape(3, 1, 1)
    # A frame of one zero pixel: RoIAlign reads zero beyond it too, so outside is the mean.
    centred = torch.nn.functional.pad(image - mean, (1, 1, 1, 1))
    boxes = with_context(boxes.float(), context) + 1.0  # into the framed image's coordinates
    crops = roi_align(centred[None], [boxes], output_size=(size, size), spatial_scale=1.0,
                      sampling_ratio=0, aligned=True)
    return crops.add_(mean).clamp_(0, 1)


def load_image(path: Path) -> tuple[bytes, Image.Image]:
    data = read_file(path)
    return data, decode_image(data)


def label_proposals(proposals: np.ndarray, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """(best IoU, the class of that ground-truth box) for each proposal; crowd and difficult
    boxes are not objects to learn."""
    keep = ~sample.ignore
    gt, labels = sample.boxes[keep], sample.labels[keep]
    if len(gt) == 0 or len(proposals) == 0:
        return np.zeros(len(proposals)), np.full(len(proposals), -1)
    overlaps = box_iou(torch.from_numpy(proposals).float(), torch.from_numpy(gt).float())
    best, which = overlaps.max(1)
    return best.numpy(), labels[which.numpy()]


def choose_regions(proposals: np.ndarray, sample: Sample, config: RegionConfig,
                   rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """The regions of one image to train on and their labels (-1: background)."""
    best, classes = label_proposals(proposals, sample)
    positive = np.flatnonzero(best >= POSITIVE_IOU)
    negative = np.flatnonzero(best < POSITIVE_IOU)
    positive = rng.permutation(positive)[:config.positives]
    keep = ~sample.ignore
    boxes = [sample.boxes[keep], proposals[positive]]
    labels = list(sample.labels[keep]) + list(classes[positive])
    if config.all_background:
        # objects are rare among the proposals: repeat them, as R-CNN's batches oversample them
        repeats = max(1, round(len(negative) / max(1.0, config.background_ratio * len(labels))))
        boxes, labels = boxes * repeats, labels * repeats
    else:
        count = max(config.min_background, round(config.background_ratio * len(labels)))
        negative = rng.permutation(negative)[:count]
    boxes.append(proposals[negative])
    labels += [-1] * len(negative)
    return np.concatenate(boxes).astype(np.float32).reshape(-1, 4), [int(v) for v in labels]


def save_crops(crops: Tensor, labels: list[int], names: list[str], folder: Path, stem: str) -> None:
    for k, (crop, label) in enumerate(zip(crops, labels)):
        target = folder / (BACKGROUND if label < 0 else folder_name(names[label]))
        target.mkdir(parents=True, exist_ok=True)
        pixels = crop.mul(255).round_().to(torch.uint8).permute(1, 2, 0).numpy()
        with atomic_path(target / f"{stem}-{k:04d}.png") as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG")


def extract_regions(data: DetectionData, folder: Path, config: RegionConfig, cache: ProposalCache,
                    on_image: Callable[[int, int], None] | None = None) -> RegionCounts:
    """Write the warped, labelled regions of every image of `data` under `folder`/<class>/."""
    rng = np.random.default_rng(config.seed)
    counts = RegionCounts(skipped=[])
    for index, sample in enumerate(data.samples):
        try:
            raw, image = load_image(sample.image)
        except (BadImage, OSError) as error:
            counts.skipped.append(f"{sample.image}: {error}")
            continue
        proposals = proposals_for(raw, np.asarray(image), config.setting, config.max_side, cache)
        boxes, labels = choose_regions(proposals, sample, config, rng)
        pixels = pil_to_tensor(image).float().div_(255)
        crops = warp(pixels, torch.from_numpy(boxes), config.warp_size, config.context, config.fill)
        save_crops(crops, labels, list(data.classes), folder, f"{sample.image.stem}")
        counts.images += 1
        counts.objects += sum(label >= 0 for label in labels)
        counts.background += sum(label < 0 for label in labels)
        if on_image is not None:
            on_image(index + 1, len(data.samples))
    return counts


def write_marker(folder: Path, counts: RegionCounts, config: RegionConfig) -> None:
    """Written last: a folder with it holds every region (a resume skips the extraction)."""
    write_atomically(folder / "regions.json",
                     json.dumps({"counts": asdict(counts), "config": asdict(config)}, indent=1).encode())
