"""Resizing only the part of an image a transform keeps, so that its cost follows the output.

"Resize the shorter side to S, then crop a box" would first build the whole resized image:
for a 4000x3000 photo and S = 256 that is small, but the cost grows with the image's aspect
ratio (a 300000x1 strip becomes 76,800,000 x 256). PIL resamples a `box` of the source
straight to the output size, reading only the source pixels under the box (and the filter's
support around it): the same sampling positions and filter as the whole resize. A resized
image of ordinary shape is small and still made whole (the old pixels exactly); an elongated
one is resized where its crops lie only, within 1 step of 255 of the old pixels with bilinear
(floating-point rounding), and with bicubic wherever PIL had ordered its two passes as we do
(tests/data/test_image_memory.py).
"""

from __future__ import annotations

from PIL import Image

from googlenet.data.images import full_size

Box = tuple[int, int, int, int]  # left, top, right, bottom

# A JPEG is decoded at reduced scale only down to this many times the size its transform
# resizes to, so that the resize that follows still averages over several decoded pixels.
DRAFT_MARGIN = 2
# A resized image up to this size (2 MB as RGB; 4:3 at 1.5 x 352, the 144-crop's largest scale,
# fits) is made whole, giving exactly the old pixels; a larger one only where its crops lie.
WHOLE_RESIZE_PIXELS = 4 * 352 * 352


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
    if reduction == 1 and width * height <= WHOLE_RESIZE_PIXELS:  # exactly the old pixels
        return image.resize((width, height), resample).crop(box)
    x_scale, y_scale = full_width / width / reduction, full_height / height / reduction
    left, top, right, bottom = box
    # Two one-direction passes, horizontal first as PIL mostly orders a whole resize, so that
    # the 8-bit rounding between them is the same (a box resize may take the other order).
    across = (left * x_scale, right * x_scale, right - left)
    down = (top * y_scale, bottom * y_scale, bottom - top)
    return one_pass(one_pass(image, across, 0, resample), down, 1, resample)


def one_pass(image: Image.Image, span: tuple[float, float, int], axis: int,
             resample: Image.Resampling) -> Image.Image:
    """Resample [start, stop) of `axis` (0: x, 1: y) to `size` pixels; the other axis is kept
    as it is. Memory: at most the output's side times the source's other side."""
    start, stop, size = span
    box = [0.0, 0.0, float(image.width), float(image.height)]
    box[axis], box[axis + 2] = start, stop
    out = [image.width, image.height]
    out[axis] = size
    return image.resize(tuple(out), resample, box=tuple(box))


def draft_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """The smallest decoded size (a DecodeSize) for resizing the shorter side to `shorter`."""
    return resized_size(width, height, DRAFT_MARGIN * shorter)
