"""Test-time crops (Sec. 7): 1 center crop, 10 crops, and the paper's 144.

The geometry is pure (`crop_views`), so tests can check every box; `MultiCrop`
turns one decoded image into the views of one or more schemes at once, so that
an image is decoded once however many schemes are evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor

from googlenet.arch.table import CROP_SCHEMES, PAPER_SCALES
from googlenet.data.images import full_size
from googlenet.data.keys import SampleKey
from googlenet.data.preprocessing import Preprocessing
from googlenet.data.resize import Box, draft_size, resize_region, resized_size, union
from googlenet.data.transforms import AnyImage, Normalize, as_pil, to_float

PAPER_CROP = 224


@dataclass(frozen=True)
class View:
    """One crop: resize the shorter side to `scale`, take `box`, maybe resize it, maybe mirror."""

    scale: int
    box: Box  # left, top, right, bottom in the resized image
    resize: bool  # the box is a whole square, resized to the crop size
    mirror: bool


def five_boxes(left: int, top: int, width: int, height: int, size: int) -> list[Box]:
    """Top-left, top-right, bottom-left, bottom-right and center size x size boxes of a region."""
    right, bottom = left + width, top + height
    center_left = left + int(round((width - size) / 2.0))
    center_top = top + int(round((height - size) / 2.0))
    return [(left, top, left + size, top + size), (right - size, top, right, top + size),
            (left, bottom - size, left + size, bottom), (right - size, bottom - size, right, bottom),
            (center_left, center_top, center_left + size, center_top + size)]


def with_mirrors(views: list[View]) -> list[View]:
    return views + [View(v.scale, v.box, v.resize, True) for v in views]


def center_views(width: int, height: int, size: int, crop_ratio: float) -> list[View]:
    scale = round(size / crop_ratio)
    w, h = resized_size(width, height, scale)
    return [View(scale, five_boxes(0, 0, w, h, size)[4], False, False)]


def ten_views(width: int, height: int, size: int, crop_ratio: float) -> list[View]:
    """The four corners and the center of the resized image, and their mirrors."""
    scale = round(size / crop_ratio)
    w, h = resized_size(width, height, scale)
    return with_mirrors([View(scale, box, False, False) for box in five_boxes(0, 0, w, h, size)])


def square_origins(width: int, height: int) -> list[tuple[int, int]]:
    """Left, center and right squares (top, center and bottom for portrait images)."""
    side, long = min(width, height), max(width, height)
    offsets = [0, int(round((long - side) / 2.0)), long - side]
    return [(o, 0) if width >= height else (0, o) for o in offsets]


def paper_views(width: int, height: int, size: int) -> list[View]:
    """Sec. 7: 4 scales x 3 squares x (4 corners + center + whole square) x 2 mirrors = 144."""
    views = []
    for base in PAPER_SCALES:
        scale = round(base * size / PAPER_CROP)  # 256..352 for 224 crops; scaled for others
        w, h = resized_size(width, height, scale)
        side = min(w, h)
        for left, top in square_origins(w, h):
            square = [View(scale, box, False, False) for box in five_boxes(left, top, side, side, size)]
            square.append(View(scale, (left, top, left + side, top + side), True, False))
            views += with_mirrors(square)
    return views


def crop_views(scheme: int, width: int, height: int, size: int, crop_ratio: float) -> list[View]:
    if scheme == 1:
        return center_views(width, height, size, crop_ratio)
    if scheme == 10:
        return ten_views(width, height, size, crop_ratio)
    if scheme == 144:
        return paper_views(width, height, size)
    raise ValueError(f"crops must be one of {', '.join(map(str, CROP_SCHEMES))}, got {scheme}")


class MultiCrop:
    """image -> V x 3 x S x S: the views of each scheme in `schemes`, concatenated in order."""

    def __init__(self, schemes: tuple[int, ...], size: int, crop_ratio: float,
                 normalise: Normalize) -> None:
        for scheme in schemes:
            crop_views(scheme, size, size, size, crop_ratio)  # validates the scheme
        self.schemes, self.size, self.crop_ratio, self.normalise = schemes, size, crop_ratio, normalise

    @property
    def counts(self) -> list[int]:
        return list(self.schemes)  # a scheme's name is its number of views

    def views(self, width: int, height: int) -> list[View]:
        return [view for scheme in self.schemes
                for view in crop_views(scheme, width, height, self.size, self.crop_ratio)]

    def decode_size(self, width: int, height: int) -> tuple[int, int]:
        return draft_size(width, height, max(view.scale for view in self.views(width, height)))

    def __call__(self, image: AnyImage, key: SampleKey | None = None) -> Tensor:
        pil = as_pil(image)
        views = self.views(*full_size(pil))
        # Each scale resizes only the region its views cover (the center crop alone for 1 crop;
        # for 10 and 144, the whole resized image, bounded by MAX_ASPECT_RATIO).
        regions: dict[int, tuple[Image.Image, Box]] = {}
        for scale in dict.fromkeys(view.scale for view in views):
            box = union([view.box for view in views if view.scale == scale])
            regions[scale] = resize_region(pil, scale, box, Image.Resampling.BILINEAR), box
        crops = []
        for view in views:
            region, (left, top, _, _) = regions[view.scale]
            crop = region.crop((view.box[0] - left, view.box[1] - top,
                                view.box[2] - left, view.box[3] - top))
            if view.resize:
                crop = crop.resize((self.size, self.size), Image.Resampling.BILINEAR)
            x = to_float(crop)
            crops.append(x.flip(-1) if view.mirror else x)
        return self.normalise(torch.stack(crops))


def multi_crop(preprocessing: Preprocessing, schemes: tuple[int, ...]) -> MultiCrop:
    return MultiCrop(schemes, preprocessing.input_size, preprocessing.crop_ratio,
                     Normalize(preprocessing))
