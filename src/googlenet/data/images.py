"""Reading and decoding image files into RGB, and the short reasons given for files that
cannot be used.

Reads are bounded: only regular files are opened (a FIFO would block, /dev/zero never ends),
files over the size limit are refused from their size alone, and the first bytes must be an
image format's before the rest is read.

Alpha policy: transparent images (RGBA, LA, PA, palette with a transparent
colour) are composited on black, i.e. colours are premultiplied by their
alpha. Dropping alpha instead would expose whatever colours an editor left
under fully transparent pixels, which differ from file to file.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from googlenet.data.config import DEFAULT_MAX_IMAGE_MB, MB

# The one list of image file suffixes: torchvision's ImageFolder's, and GIF (its first frame).
# Files with other suffixes are ignored in folders and archives.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
WIDE_GRAY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


HEADER_BYTES = 16
# The first bytes of the formats of IMAGE_SUFFIXES (WebP and PNM are checked apart).
MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


class BadImage(Exception):
    """A file that cannot be used as an image; str(error) is a short reason."""


def check_header(head: bytes) -> None:
    """Refuse a file whose first bytes are no image format's (an empty file is left to decode)."""
    webp = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    pnm = head[:1] == b"P" and head[1:2] in (b"1", b"2", b"3", b"4", b"5", b"6")
    if head and not (head.startswith(MAGIC) or webp or pnm):
        raise BadImage("not an image (unrecognised format)")


def check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise BadImage(f"{size / MB:.1f} MB, over the {max_bytes / MB:g} MB limit for an image file")


def unreadable_link(path: Path, error: OSError) -> BadImage:
    if error.errno == errno.ELOOP:
        return BadImage("symbolic link loop")
    if os.path.islink(path) and error.errno == errno.ENOENT:
        return BadImage(f"dangling symbolic link (to {os.readlink(path)})")
    return BadImage(f"cannot read ({error.strerror or error})")


def read_file(path: str | Path, max_bytes: int = DEFAULT_MAX_IMAGE_MB * MB) -> bytes:
    """An image file's bytes, read boundedly; BadImage says why a file is refused."""
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as error:
        raise unreadable_link(path, error) from None
    if stat.S_ISDIR(info.st_mode):
        raise BadImage("a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise BadImage("not a regular file (a device, pipe or socket): not read")
    check_size(info.st_size, max_bytes)
    with open(path, "rb") as f:
        head = f.read(HEADER_BYTES)
        check_header(head)
        data = head + f.read(max_bytes + 1 - len(head))  # bounded even if the file grows
    check_size(len(data), max_bytes)
    return data


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def read_image(read: Callable[[], bytes]) -> tuple[Image.Image | None, str | None]:
    """The one "decode an image or say why not": (RGB image, None), or (None, short reason)
    for a file that cannot be read or decoded. `read` returns the file's bytes."""
    try:
        return decode_image(read()), None
    except BadImage as error:
        return None, str(error)
    except OSError as error:  # vanished file, I/O error: skipped like a bad image
        return None, f"cannot read ({error.strerror or error})"


def decode_image(data: bytes) -> Image.Image:
    """Decode a file's bytes into an RGB image, or raise BadImage with a short reason."""
    if not data:
        raise BadImage("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # A warning is PIL's lower bomb threshold; we refuse those images too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()  # a GIF or other animation: its first frame
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        reason = str(error).split(",")[0]  # drop PIL's ", could be decompression bomb DOS attack."
        raise BadImage(f"decompression bomb refused ({reason})") from None
    except UnidentifiedImageError:
        raise BadImage("not an image (unrecognised format)") from None
    except Exception as error:  # noqa: BLE001 - PIL's plugins raise many types on corrupt data
        raise BadImage(f"corrupt or truncated image ({first_sentence(error)})") from None
    return to_rgb(upright(image))


def upright(image: Image.Image) -> Image.Image:
    """Apply a camera's EXIF orientation flag; a broken EXIF block leaves the pixels as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - EXIF parsing raises many types on malformed tags
        return image


def first_sentence(error: BaseException) -> str:
    return str(error).split(". ")[0].strip().rstrip(".") or type(error).__name__


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB: alpha composited on black, 16-bit gray scaled to 8 bits."""
    if image.mode == "RGB":
        return image
    if image.mode in ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    if image.mode in WIDE_GRAY_MODES:
        # PIL's own I -> L conversion clips at 255 instead of scaling 16-bit values.
        gray = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(np.rint(gray), 0, 255).astype(np.uint8), "L")
    try:
        return image.convert("RGB")
    except (ValueError, OSError):
        raise BadImage(f"unsupported image mode {image.mode}") from None
