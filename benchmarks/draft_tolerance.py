"""How far reduced-scale JPEG decoding (PIL's draft) moves the eval transform's pixels.

    PYTHONPATH=src .venv/bin/python benchmarks/draft_tolerance.py [--margin 2] [--input-size 224]

For every real photograph of ../shared/data (raccoon, coco128) that the eval transform
(resize 256, center crop 224) would decode at reduced scale, compares the 224x224 crop
decoded whole (the baseline) with the one decoded at reduced scale: mean and largest
absolute difference in 0..255 steps, and the 99th percentile. `--margin` is the factor the
decoded image keeps above the resize target (resize.DRAFT_MARGIN, 2); 1 shows what a
tighter draft would cost. Skips with a message where ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from googlenet.data import resize
from googlenet.data.images import decode_image
from googlenet.data.preprocessing import Preprocessing
from googlenet.data.transforms import EvalTransform

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared/data"
FOLDERS = ("raccoon/images", "coco128/train2017")


def eval_crop(data: bytes, transform: EvalTransform, reduce: bool) -> tuple[np.ndarray, int]:
    """The eval transform's crop in 0..255 steps and the decoded width, the JPEG decoded whole
    or at the reduced scale the transform allows."""
    image = decode_image(data, transform.decode_size if reduce else None)
    return np.rint(transform(image).numpy() * 255).astype(np.int16), image.width


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--margin", type=int, default=2)
    parser.add_argument("--input-size", type=int, default=224,
                        help="smaller sizes stand in for larger photographs than these")
    args = parser.parse_args()
    if not SHARED_DATA.is_dir():
        sys.exit(f"skipped: {SHARED_DATA} is absent")
    resize.DRAFT_MARGIN = args.margin
    transform = EvalTransform(Preprocessing(input_size=args.input_size, mean=(0, 0, 0), std=(1, 1, 1)))
    diffs, count = [], 0
    for folder in FOLDERS:
        for file in sorted((SHARED_DATA / folder).glob("*.jpg")):
            data = file.read_bytes()
            (whole, width), (reduced, reduced_width) = (eval_crop(data, transform, False),
                                                        eval_crop(data, transform, True))
            if reduced_width < width:
                count += 1
                diffs.append(np.abs(whole - reduced).ravel())
    if not diffs:
        sys.exit("no photograph is large enough to be decoded at reduced scale")
    every = np.concatenate(diffs)
    print(f"input {args.input_size}, resize {transform.resize_to}, margin {args.margin}: "
          f"{count} photographs decoded at reduced scale; "
          f"|difference| mean {every.mean():.2f}, 99th percentile {np.percentile(every, 99):.0f}, "
          f"max {every.max()} (0..255 steps)")


if __name__ == "__main__":
    main()
