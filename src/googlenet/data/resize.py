"""Resizing only the part of an image a transform keeps, so that its cost follows the output.

"Resize the shorter side to S, then crop a box" would first build the whole resized image:
for a 4000x3000 photo and S = 256 that is small, but the cost grows with the image's aspect
ratio (a 300000x1 strip becomes 76,800,000 x 256). PIL resamples a `box` of the source
straight to the output size, reading only the source pixels under the box (and the filter's
support around it): the same sampling positions and filter as the whole resize, so the
result equals the whole-resize-then-crop one (tests/data/test_image_memory.py measures it: at
most 1 in 255 on a rare pixel, from floating-point rounding).
"""

from __future__ import annotations

from PIL import Image

from googlenet.data.images import full_size

Box = tuple[int, int, int, int]  # left, top, right, bottom

# A JPEG is decoded at reduced scale only down to this many times the size its transform
# resizes to, so that the resize that follows still averages over several decoded pixels.
DRAFT_MARGIN = 2


def resized_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """The size after resizing the shorter side to `shorter` (torchvision's rounding)."""
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def center_box(width: int, height: int, size: int) -> Box:
    """The centered size x size box of a width x height image (torchvision's rounding)."""
    left, top = int(round((width - size) / 2.0)), int(round((height - size) / 2.0))
    return left, top, left + size, top + size


def union(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def resize_region(image: Image.Image, shorter: int, box: Box,
                  resample: Image.Resampling) -> Image.Image:
    """`image.resize(resized_size(..., shorter), resample).crop(box)`, computed from the source
    pixels under `box` only (box in the resized image's coordinates, inside it). The geometry
    is the whole image's (full_size) when the image was decoded at reduced scale."""
    full_width, full_height = full_size(image)
    width, height = resized_size(full_width, full_height, shorter)
    if (width, height) == image.size:
        return image.crop(box)
    # Reduced by s, the image holds the whole image's W/s columns (the last one maybe partial).
    reduction = round(full_width / image.width)
    x_scale, y_scale = full_width / width / reduction, full_height / height / reduction
    left, top, right, bottom = box
    return image.resize((right - left, bottom - top), resample,
                        box=(left * x_scale, top * y_scale, right * x_scale, bottom * y_scale))


def draft_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """The smallest decoded size (a DecodeSize) for resizing the shorter side to `shorter`."""
    return resized_size(width, height, DRAFT_MARGIN * shorter)
