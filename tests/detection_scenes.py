"""Small detection data sets for tests/detection: coloured boxes on a textured background, written
as PASCAL VOC XML or COCO json (plain helpers, importable from the test folders)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import SHARED_DATA
from PIL import Image

RACCOON = SHARED_DATA / "raccoon"
COCO128 = SHARED_DATA / "coco128"
CLASSES = ("square", "bar")


def need(path: Path) -> None:
    if not path.is_dir():
        pytest.skip(f"{path} is absent (the shared data sets live in ../shared/data)")


def picture(size: tuple[int, int], boxes: list[tuple], seed: int) -> Image.Image:
    """A noisy grey background with a flat red (class 0) or blue (class 1) box per object."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(90, 140, (size[1], size[0], 3)).astype(np.uint8)
    for x1, y1, x2, y2, label in boxes:
        pixels[y1:y2, x1:x2] = (220, 30, 30) if label == 0 else (30, 30, 220)
    return Image.fromarray(pixels)


SCENES = [  # (name, (width, height), [(x1, y1, x2, y2, label)])
    ("a.png", (96, 80), [(10, 12, 50, 52, 0)]),
    ("b.png", (80, 96), [(30, 20, 70, 40, 1), (5, 50, 35, 85, 0)]),
    ("c.png", (96, 96), [(40, 40, 90, 90, 0)]),
]


def voc_xml(name: str, size: tuple[int, int], boxes: list[tuple], classes=CLASSES) -> str:
    objects = "".join(
        f"<object><name>{classes[label]}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin>"
        f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for x1, y1, x2, y2, label in boxes)
    return (f"<annotation><filename>{name}</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size>{objects}</annotation>")


def write_voc(root: Path, scenes=SCENES) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    for i, (name, size, boxes) in enumerate(scenes):
        picture(size, boxes, i).save(root / "images" / name)
        (root / "annotations" / f"{Path(name).stem}.xml").write_text(voc_xml(name, size, boxes))
    (root / "splits").mkdir(exist_ok=True)
    (root / "splits" / "train.txt").write_text("a.png\nb.png\n")
    (root / "splits" / "test.txt").write_text("c.png\n")
    return root


def write_coco(root: Path, scenes=SCENES) -> Path:
    (root / "train2017").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    images, annotations = [], []
    for i, (name, size, boxes) in enumerate(scenes):
        picture(size, boxes, i).save(root / "train2017" / name)
        images.append({"id": 100 + i, "file_name": name, "width": size[0], "height": size[1]})
        for x1, y1, x2, y2, label in boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": 100 + i, "iscrowd": 0,
                                "category_id": [3, 7][label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": (x2 - x1) * (y2 - y1)})
    categories = [{"id": 7, "name": "bar"}, {"id": 3, "name": "square"}]
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": categories}))
    return root
