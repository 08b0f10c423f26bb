"""Decoding: every PIL mode becomes RGB; unreadable files give BadImage with a short reason."""

import io

import numpy as np
import pytest
import torch
from helpers import jpeg_bytes, write_tree
from PIL import Image

from googlenet.data.config import AugmentConfig, DataConfig
from googlenet.data.images import BadImage, decode_image
from googlenet.data.splits import load_datasets


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def palette_with_transparency() -> bytes:
    image = Image.new("P", (6, 4), 1)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((0, 0), 0)
    return encode(image, "PNG", transparency=0)  # palette entry 0 (red) is transparent


@pytest.mark.parametrize("mode, fmt", [("RGB", "PNG"), ("L", "PNG"), ("CMYK", "JPEG"),
                                       ("RGBA", "PNG"), ("LA", "PNG"), ("1", "PNG"),
                                       ("P", "PNG"), ("I;16", "PNG"), ("RGB", "WEBP")])
def test_every_mode_becomes_rgb(mode, fmt):
    image = Image.new("RGB", (10, 7), (200, 120, 40)).convert(mode)
    decoded = decode_image(encode(image, fmt))
    assert decoded.mode == "RGB" and decoded.size == (10, 7)


def test_every_mode_becomes_a_3_x_h_x_w_tensor(tmp_path):
    root = tmp_path / "data"
    write_tree(root / "val", {"dog": 1})
    files = {"rgb.png": ("RGB", "PNG"), "gray.png": ("L", "PNG"), "cmyk.jpg": ("CMYK", "JPEG"),
             "rgba.png": ("RGBA", "PNG"), "bits.bmp": ("1", "BMP"), "palette.png": ("P", "PNG")}
    for split in ("train", "val"):
        (root / split / "dog").mkdir(parents=True, exist_ok=True)
        for name, (mode, fmt) in files.items():
            image = Image.new("RGB", (21, 13), (9, 99, 199)).convert(mode)
            image.save(root / split / "dog" / name, fmt)
    (root / "train" / "dog" / "palette_alpha.png").write_bytes(palette_with_transparency())
    data = DataConfig(path=str(root), input_size=16)
    for augment in ("paper", "crop-flip", "none"):
        train = load_datasets(data, AugmentConfig(policy=augment), seed=0).train
        for i in range(len(train)):
            image, _, bad = train[i]
            assert bad is None and image.shape == (3, 16, 16) and image.dtype == torch.float32


def test_palette_transparency_is_composited_on_black():
    pixels = np.asarray(decode_image(palette_with_transparency()))
    assert pixels[0, 0].tolist() == [0, 0, 0]  # transparent red -> black
    assert pixels[1, 1].tolist() == [0, 255, 0]


def test_alpha_is_composited_on_black():
    image = Image.new("RGBA", (3, 1))
    image.putdata([(200, 100, 50, 0), (200, 100, 50, 255), (200, 100, 50, 128)])
    pixels = np.asarray(decode_image(encode(image, "PNG")))[0].astype(int)
    assert pixels[0].tolist() == [0, 0, 0] and pixels[1].tolist() == [200, 100, 50]
    assert np.abs(pixels[2] - [100, 50, 25]).max() <= 1


def test_sixteen_bit_gray_is_scaled_not_clipped():
    image = Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=np.uint16))
    pixels = np.asarray(decode_image(encode(image, "PNG")))
    assert pixels[0, :, 0].tolist() == [0, 100, 255]


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"this is a text file, not a jpeg\n", "not an image"),
    (jpeg_bytes()[:400], "corrupt or truncated"),
])
def test_unreadable_files_give_short_reasons(data, reason):
    with pytest.raises(BadImage, match=reason):
        decode_image(data)


@pytest.mark.parametrize("size", [(40, 40), (64, 64)])  # PIL's warning range, then its error range
def test_decompression_bombs_are_refused(monkeypatch, size):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(BadImage, match="decompression bomb"):
        decode_image(encode(Image.new("RGB", size), "PNG"))
