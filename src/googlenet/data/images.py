"""Reading and decoding image files into RGB, and the short reasons given for files that
cannot be used.

Reads are bounded: only regular files are opened (a FIFO would block, /dev/zero never ends),
files over the size limit are refused from their size alone, and the first bytes must be an
image format's before the rest is read.

Decoding is bounded too: PIL's pixel limit refuses decompression bombs and MAX_ASPECT_RATIO
refuses extreme shapes, both from the header before any pixel is decoded; a JPEG much larger
than a transform needs is decoded at 1/2, 1/4 or 1/8 scale (`DecodeSize`); memory freed
after a large decode is given back to the system (`release_memory`).

Alpha policy: transparent images (RGBA, LA, PA, palette with a transparent
colour) are composited on black, i.e. colours are premultiplied by their
alpha. Dropping alpha instead would expose whatever colours an editor left
under fully transparent pixels, which differ from file to file.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import io
import os
import stat
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from googlenet.data.config import DEFAULT_MAX_IMAGE_MB, MB
from googlenet.errors import BadImage

__all__ = ["BadImage"]  # raised here, defined with the library's other errors

# The one list of image file suffixes: torchvision's ImageFolder's, and GIF (its first frame).
# Files with other suffixes are ignored in folders and archives.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
WIDE_GRAY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


HEADER_BYTES = 16
# The first bytes of the formats of IMAGE_SUFFIXES (WebP and PNM are checked apart).
MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")

# No photograph is this elongated (stitched panoramas reach about 10:1, web banners about 11:1),
# yet resizing the shorter side of such an image costs memory in proportion to its ratio: a
# 372-byte 300000x1 PNG would become 76,800,000 x 256 pixels. Refused from the header.
MAX_ASPECT_RATIO = 50
# After a decode this large (RGB at PIL's 4 bytes a pixel), freed memory is handed back to the
# system: glibc keeps freed blocks under 32 MB in its heaps, so a server would stay at its peak.
TRIM_BYTES = 64 * MB
# The stored (width, height) of an image -> the smallest (width, height) a transform can start
# from without changing its result beyond the tolerance the README states.
DecodeSize = Callable[[int, int], tuple[int, int]]
# image.info key of an image decoded at reduced scale: the (width, height) of the whole image.
FULL_SIZE = "googlenet.full_size"
ORIENTATION_TAG = 0x0112
TURNED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
T = TypeVar("T")


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


def read_image(read: Callable[[], bytes],
               needed: DecodeSize | None = None) -> tuple[Image.Image | None, str | None]:
    """The one "decode an image or say why not": (RGB image, None), or (None, short reason)
    for a file that cannot be read or decoded. `read` returns the file's bytes; `needed`, the
    size a transform needs (a larger JPEG is decoded at reduced scale)."""
    try:
        return decode_image(read(), needed), None
    except BadImage as error:
        return None, str(error)
    except OSError as error:  # vanished file, I/O error: skipped like a bad image
        return None, f"cannot read ({error.strerror or error})"


def read_transformed(read: Callable[[], bytes], transform: Callable[..., T],
                     *args: Any) -> tuple[T | None, str | None]:
    """read_image, then transform(image, *args): (result, None) or (None, short reason).

    The transform's `decode_size` (a DecodeSize), when it has one, lets a large JPEG decode at
    reduced scale; after a large decode the freed memory goes back to the system. Every path
    that turns a file or an upload into a model input goes through here."""
    image, reason = read_image(read, getattr(transform, "decode_size", None))
    if image is None:
        return None, reason
    decoded_bytes = 4 * image.width * image.height
    try:
        return transform(image, *args), None
    finally:
        del image
        if decoded_bytes > TRIM_BYTES:
            release_memory()


def decode_image(data: bytes, needed: DecodeSize | None = None) -> Image.Image:
    """Decode a file's bytes into an RGB image, or raise BadImage with a short reason.

    Its shape is checked from the header first (pixel count and aspect ratio); with `needed`,
    a JPEG at least twice as large as needed is decoded at 1/2, 1/4 or 1/8 scale."""
    if not data:
        raise BadImage("empty file (0 bytes)")
    with decoding_errors():
        image = Image.open(io.BytesIO(data))
    check_shape(image.width, image.height)
    full_size = image.size
    with decoding_errors():
        if needed is not None:
            reduce_on_decode(image, needed)
        image.load()  # a GIF or other animation: its first frame
    reduced = image.size != full_size
    turned = image.getexif().get(ORIENTATION_TAG, 1) in TURNED
    image = to_rgb(upright(image))
    if reduced:  # a transform's geometry follows the whole image, not the rounded reduced size
        image.info[FULL_SIZE] = full_size[::-1] if turned else full_size
    return image


def full_size(image: Image.Image) -> tuple[int, int]:
    """The size of the whole image that `image` was decoded from (smaller when reduced)."""
    return image.info.get(FULL_SIZE, image.size)


@contextmanager
def decoding_errors() -> Iterator[None]:
    """PIL's errors while opening or decoding -> BadImage with a short reason."""
    try:
        with warnings.catch_warnings():
            # A warning is PIL's lower bomb threshold; we refuse those images too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        reason = str(error).split(",")[0]  # drop PIL's ", could be decompression bomb DOS attack."
        raise BadImage(f"decompression bomb refused ({reason})") from None
    except UnidentifiedImageError:
        raise BadImage("not an image (unrecognised format)") from None
    except BadImage:
        raise
    except Exception as error:
        raise BadImage(f"corrupt or truncated image ({first_sentence(error)})") from None


def check_shape(width: int, height: int) -> None:
    if min(width, height) < 1:
        raise BadImage(f"{width}x{height} pixels: no pixels")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        ratio = max(width, height) / min(width, height)
        raise BadImage(f"{width}x{height} pixels: aspect ratio {ratio:.0f}:1 is over the "
                       f"{MAX_ASPECT_RATIO}:1 limit for an image")


def reduce_on_decode(image: Image.Image, needed: DecodeSize) -> None:
    """JPEG only: let libjpeg decode at the largest reduction (1/2, 1/4, 1/8) that keeps the
    image at least `needed` (in upright orientation) in both directions."""
    if not isinstance(image, JpegImagePlugin.JpegImageFile):
        return
    turned = image.getexif().get(ORIENTATION_TAG, 1) in TURNED
    width, height = (image.height, image.width) if turned else image.size
    need_w, need_h = needed(width, height)
    image.draft(None, (need_h, need_w) if turned else (need_w, need_h))


def release_memory() -> None:
    """Hand freed heap memory back to the system (glibc's malloc_trim); a no-op elsewhere."""
    trim = malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return None


def upright(image: Image.Image) -> Image.Image:
    """Apply a camera's EXIF orientation flag; a broken EXIF block leaves the pixels as stored."""
    try:
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of an upright image
    except Exception:
        pass
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
