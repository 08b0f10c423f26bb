"""Transforms: Sec. 6 patches and interpolations, crop-flip (per sample = batched), eval crop."""

import math
from collections import Counter
from dataclasses import replace
from itertools import permutations

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from googlenet.data.config import AugmentConfig
from googlenet.data.keys import SampleKey
from googlenet.data.preprocessing import Preprocessing
from googlenet.data.transforms import (
    HOWARD_DISTORTIONS,
    INTERPOLATION_NAMES,
    CropFlip,
    Normalize,
    adjust_,
    eval_transform,
    lighting_shift,
    sample_crop,
    sample_paper_params,
    train_transform,
)

DATA = Preprocessing(input_size=24, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
IDENTITY = Normalize(DATA)


def random_image(height=30, width=40, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)


@pytest.mark.parametrize("height, width", [(224, 224), (375, 500), (500, 333), (32, 32), (8, 8)])
def test_paper_crops_cover_8_to_100_percent_with_aspect_3_4_to_4_3(height, width):
    generator = torch.Generator().manual_seed(0)
    areas = []
    for _ in range(2000):
        top, left, h, w = sample_crop(height, width, (0.08, 1.0), (3 / 4, 4 / 3), generator)
        assert 0 <= top <= height - h and 0 <= left <= width - w
        assert 0.08 <= h * w / (height * width) <= 1.0
        assert 3 / 4 <= w / h <= 4 / 3
        areas.append(h * w / (height * width))
    if height >= 32:  # the draws spread over the range, not just the fallback
        assert min(areas) < 0.12 and max(areas) > 0.85


def test_crop_fallback_on_extreme_aspect_ratios_stays_in_range():
    generator = torch.Generator().manual_seed(0)
    for height, width in [(10, 400), (400, 10)]:
        top, left, h, w = sample_crop(height, width, (0.99, 1.0), (3 / 4, 4 / 3), generator)
        assert 3 / 4 <= w / h <= 4 / 3 and top == (height - h) // 2 and left == (width - w) // 2


def test_every_interpolation_is_drawn_about_equally():
    generator = torch.Generator().manual_seed(0)
    drawn = Counter(sample_paper_params(64, 64, AugmentConfig(), generator).interpolation
                    for _ in range(800))
    assert set(drawn) == set(INTERPOLATION_NAMES) == {"bilinear", "area", "nearest", "bicubic"}
    assert min(drawn.values()) > 150
    fixed = AugmentConfig(random_interpolation=False)
    assert sample_paper_params(64, 64, fixed, generator).interpolation == "bilinear"


def test_jitter_skips_zero_strengths_and_lighting_can_be_off():
    generator = torch.Generator().manual_seed(0)
    augment = AugmentConfig(photometric="jitter", brightness=0.4, contrast=0.0, saturation=0.0,
                            hue=0.1, pca_lighting=0.0)
    params = sample_paper_params(64, 64, augment, generator)
    assert sorted(name for name, _ in params.photometric) == ["brightness", "hue"]
    assert params.lighting is None
    assert all(0.6 <= f <= 1.4 if n == "brightness" else -0.1 <= f <= 0.1
               for n, f in params.photometric)
    unset = sample_paper_params(64, 64, AugmentConfig(photometric="jitter"), generator)
    assert sorted(n for n, _ in unset.photometric) == ["brightness", "contrast", "saturation"]
    assert all(0.6 <= f <= 1.4 for _, f in unset.photometric)  # the defaults: 0.4, hue 0


def test_howard_draws_three_factors_from_half_to_one_and_a_half_in_a_random_order():
    generator = torch.Generator().manual_seed(0)
    draws = [sample_paper_params(64, 64, AugmentConfig(), generator) for _ in range(600)]
    orders = Counter(tuple(name for name, _ in p.photometric) for p in draws)
    assert set(orders) == set(permutations(HOWARD_DISTORTIONS))  # all 6 orders ...
    assert min(orders.values()) > 60  # ... about equally often
    factors = [f for p in draws for _, f in p.photometric]
    assert all(0.5 <= f <= 1.5 for f in factors) and min(factors) < 0.51 and max(factors) > 1.49
    assert all(p.lighting is not None for p in draws)  # std 0.1 by default, as Howard
    again = torch.Generator().manual_seed(0)
    assert sample_paper_params(64, 64, AugmentConfig(), again) == draws[0]  # a function of the seed


def test_lighting_comes_after_the_distortions_in_the_order_drawn():
    image = random_image(24, 24)
    transform = train_transform(DATA, AugmentConfig())
    drawn = transform.params(24, 24, SampleKey(0, 0, 0))
    fixed = replace(drawn, crop=(0, 0, 24, 24), interpolation="nearest", flip=False,
                    photometric=(("contrast", 0.6), ("brightness", 1.4), ("saturation", 0.7)),
                    lighting=(1.0, -1.0, 0.5))
    transform.params = lambda height, width, key: fixed
    x = image.float() / 255

    def by_hand(order, lighting_first=False):
        y = x + lighting_shift(fixed.lighting) if lighting_first else x.clone()
        for name, factor in order:
            y = adjust_(y, name, factor)
        return y if lighting_first else y + lighting_shift(fixed.lighting)

    out = transform(image)
    assert torch.allclose(out, by_hand(fixed.photometric), atol=1e-6)
    assert not torch.allclose(out, by_hand(fixed.photometric[::-1]), atol=1e-3)  # order matters
    assert not torch.allclose(out, by_hand(fixed.photometric, lighting_first=True), atol=1e-3)


@pytest.mark.parametrize("name, enhance", [("brightness", ImageEnhance.Brightness),
                                           ("contrast", ImageEnhance.Contrast),
                                           ("saturation", ImageEnhance.Color)])
@pytest.mark.parametrize("factor", [0.5, 0.8, 1.5])
def test_distortions_are_pils_image_enhance_as_howard_used_it(name, enhance, factor):
    image = random_image(32, 32, seed=3)
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    expected = torch.from_numpy(np.array(enhance(pil).enhance(factor))).permute(2, 0, 1).float() / 255
    ours = adjust_(image.float() / 255, name, factor)
    assert (ours - expected).abs().max() <= 2 / 255  # PIL rounds to 8 bits (and its mean grey)


def test_paper_transform_is_a_function_of_the_key():
    transform = train_transform(DATA, AugmentConfig(photometric="jitter", hue=0.05))
    image = random_image()
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    out = transform(image, SampleKey(seed=1, epoch=2, index=3))
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32
    assert torch.equal(out, transform(pil, SampleKey(1, 2, 3)))  # PIL or tensor, same result
    assert not torch.equal(out, transform(image, SampleKey(1, 2, 4)))
    assert not torch.equal(out, transform(image, SampleKey(1, 3, 3)))
    assert transform(image).shape == (3, 24, 24)  # without a key: the global RNG


def test_eval_transform_resizes_the_shorter_side_then_center_crops():
    data = Preprocessing(input_size=24, crop_ratio=0.75, mean=(0.5,) * 3, std=(0.25,) * 3)
    image = torch.full((3, 30, 60), 255, dtype=torch.uint8)
    out = eval_transform(data)(image)
    assert out.shape == (3, 24, 24)
    assert torch.allclose(out, torch.full_like(out, (1 - 0.5) / 0.25))  # normalised with mean/std
    photo = Image.new("L", (500, 375))
    assert eval_transform(Preprocessing(input_size=224))(photo).shape == (3, 224, 224)


def test_crop_flip_batched_equals_per_sample():
    crop_flip = CropFlip(size=24, padding=4, hflip=0.5, normalise=IDENTITY)
    images = torch.stack([random_image(24, 24, seed=i) for i in range(16)])
    indices = torch.arange(100, 116)
    batch = crop_flip.batch(images, seed=7, epoch=3, indices=indices)
    assert batch.shape == (16, 3, 24, 24)
    for image, index, out in zip(images, indices.tolist(), batch):
        assert torch.equal(out, crop_flip(image, SampleKey(7, 3, index)))
    assert torch.equal(batch, crop_flip.batch(images, 7, 3, indices))  # deterministic
    assert not torch.equal(batch, crop_flip.batch(images, 7, 4, indices))  # a new epoch, new crops


def test_crop_flip_shifts_pads_with_zeros_and_flips():
    image = random_image(24, 24)
    plain = CropFlip(24, padding=0, hflip=0.0, normalise=IDENTITY)
    flipped = CropFlip(24, padding=0, hflip=1.0, normalise=IDENTITY)
    pixels = image.float() / 255
    assert torch.allclose(plain(image, SampleKey(0, 0, 0)), pixels, atol=1e-6)
    assert torch.allclose(flipped(image, SampleKey(0, 0, 0)), pixels.flip(-1), atol=1e-6)
    shifted = CropFlip(24, padding=4, hflip=0.0, normalise=IDENTITY)
    outs = [shifted(torch.full((3, 24, 24), 255, dtype=torch.uint8), SampleKey(0, 0, i))
            for i in range(50)]
    assert any((out == 0).any() for out in outs)  # some offsets reach the zero padding
    assert all(out.shape == (3, 24, 24) for out in outs)


def test_crop_flip_resizes_images_of_another_size():
    out = CropFlip(32, 4, 0.5, IDENTITY)(random_image(8, 8), SampleKey(0, 0, 0))
    assert out.shape == (3, 32, 32)


@pytest.mark.parametrize("fields, message", [
    ({"scale": (0.5, 0.2)}, "augment.scale must be 0 < min <= max <= 1"),
    ({"policy": "mixup"}, "augment.policy must be paper, crop-flip or none"),
    ({"photometric": "jitter", "hue": 0.7}, "augment.hue must be in"),
    ({"photometric": "autoaugment"}, "augment.photometric must be howard or jitter"),
    ({"brightness": 0.3}, "augment.brightness is a strength of photometric jitter; howard"),
])
def test_bad_augment_settings(fields, message):
    with pytest.raises(ValueError, match=message):
        train_transform(DATA, AugmentConfig(**fields))


def test_normalisation_constants_are_checked():
    with pytest.raises(ValueError, match="std positive"):
        Preprocessing(std=(0.2, 0.0, 0.2))
    assert math.isclose(round(224 / 0.875), 256)
