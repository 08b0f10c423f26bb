"""Sec. 7's test-time crops: every box of the 1, 10 and 144 schemes, landscape and portrait."""

import pytest
import torch
from PIL import Image

from googlenet.data.crops import crop_views, multi_crop, resized_size
from googlenet.data.preprocessing import Preprocessing
from googlenet.data.transforms import eval_transform


def test_144_crops_of_a_landscape_image():
    views = crop_views(144, 500, 375, 224, 0.875)
    assert len(views) == 144 == 4 * 3 * 6 * 2
    assert sorted({v.scale for v in views}) == [256, 288, 320, 352]
    assert sum(v.mirror for v in views) == 72
    assert sum(v.resize for v in views) == 4 * 3 * 2
    # scale 256: the image becomes 341x256; its left, center and right 256x256 squares
    w, h = resized_size(500, 375, 256)
    assert (w, h) == (341, 256)
    squares = [v.box for v in views if v.scale == 256 and v.resize and not v.mirror]
    assert squares == [(0, 0, 256, 256), (42, 0, 298, 256), (85, 0, 341, 256)]
    # inside the center square: four corners and the center, 224x224
    crops = [v.box for v in views[12:17]]
    assert crops == [(42, 0, 266, 224), (74, 0, 298, 224), (42, 32, 266, 256), (74, 32, 298, 256),
                     (58, 16, 282, 240)]
    for v in views:
        left, top, right, bottom = v.box
        rw, rh = resized_size(500, 375, v.scale)
        assert 0 <= left < right <= rw and 0 <= top < bottom <= rh
        assert (right - left, bottom - top) == ((v.scale, v.scale) if v.resize else (224, 224))


def test_144_crops_of_a_portrait_image_take_top_center_bottom_squares():
    views = crop_views(144, 300, 400, 224, 0.875)
    assert len(views) == 144
    squares = [v.box for v in views if v.scale == 352 and v.resize and not v.mirror]
    assert squares == [(0, 0, 352, 352), (0, 58, 352, 410), (0, 117, 352, 469)]  # round(58.5) = 58


def test_crop_geometry_scales_with_the_input_size():
    views = crop_views(144, 32, 32, 32, 1.0)
    assert sorted({v.scale for v in views}) == [37, 41, 46, 50]
    assert all(v.box[2] - v.box[0] == 32 for v in views if not v.resize)


def test_10_crops_are_corners_center_and_mirrors():
    views = crop_views(10, 256, 320, 224, 0.875)
    assert len(views) == 10 and [v.mirror for v in views] == [False] * 5 + [True] * 5
    assert views[4].box == (16, 48, 240, 272)  # center of 256x320
    assert views[0].box == views[5].box


def test_bad_scheme_is_a_value_error():
    with pytest.raises(ValueError, match="crops must be one of 1, 10, 144"):
        crop_views(12, 100, 100, 32, 1.0)


def test_one_crop_equals_the_evaluation_transform():
    data = Preprocessing(input_size=64, crop_ratio=0.875)
    image = Image.effect_mandelbrot((97, 80), (-2, -1.5, 1, 1.5), 50).convert("RGB")
    views = multi_crop(data, (1,))(image)
    assert views.shape == (1, 3, 64, 64)
    torch.testing.assert_close(views[0], eval_transform(data)(image))


def test_multi_crop_concatenates_schemes_and_mirrors():
    data = Preprocessing(input_size=32, crop_ratio=1.0)
    image = Image.effect_mandelbrot((40, 48), (-2, -1.5, 1, 1.5), 50).convert("RGB")
    views = multi_crop(data, (1, 10, 144))(image)
    assert views.shape == (155, 3, 32, 32)
    torch.testing.assert_close(views[1 + 5], views[1].flip(-1))  # 10-crop: mirror of the first
