"""Detection data: PASCAL VOC XML folders and COCO instances json, with optional split lists.

    data = load_detection("../shared/data/raccoon", split="train")   # VOC: annotations/*.xml
    data = load_detection("../shared/data/coco128", split="test")    # COCO: annotations/instances_*.json

Boxes are kept as the files give them, converted to (x1, y1, x2, y2) in pixels (COCO's
[x, y, w, h] becomes [x, y, x + w, y + h]; VOC's corners are taken as they are).

Bad annotations (the policy, `on_bad`):
- "error" (the default): the first bad annotation raises a DataError naming the file and the
  problem: a box with zero or negative area, a box outside its image (by more than one pixel;
  within one pixel it is clipped), an unknown class, a missing image file, an unreadable
  annotation file;
- "skip": bad boxes are dropped, an image whose file is missing or whose annotation file cannot
  be read is dropped, each counted and named in `DetectionData.skipped`.
Images that turn out unreadable when decoded are skipped and counted wherever they are read
(training, evaluation), as classification does with unreadable images.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from googlenet.errors import DataError

BAD_POLICIES = ("error", "skip")
EDGE_TOLERANCE = 1.0  # pixels a box may pass the image's edge by (VOC's 1-based corners); clipped
VOC_ANNOTATIONS = ("annotations", "Annotations")
VOC_IMAGES = ("images", "JPEGImages")


@dataclass
class Sample:
    """One image and its objects: boxes N x 4 (x1, y1, x2, y2, float32, pixels), labels N
    (0-based indices into the data set's classes), crowd and difficult flags (boxes that
    evaluation ignores: COCO's crowd regions, VOC's difficult objects; training skips them)."""

    image: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    ignore: np.ndarray  # bool N: crowd or difficult
    areas: np.ndarray | None = None  # COCO's segmentation areas, when the file gives them

    @property
    def name(self) -> str:
        return self.image.name


@dataclass
class DetectionData:
    classes: tuple[str, ...]
    samples: list[Sample]
    source: str  # where it was read from (the annotation folder or json file)
    skipped: list[str] = field(default_factory=list)  # "file: reason", policy "skip"

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, names: list[str]) -> DetectionData:
        """The samples whose image file names are in `names`, in that order."""
        by_name = {s.name: s for s in self.samples}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise DataError(f"{self.source}: no image named {missing[0]}")
        return DetectionData(self.classes, [by_name[n] for n in names], self.source, list(self.skipped))


class Problems:
    """Applies the bad-annotation policy: raise at once, or record and go on."""

    def __init__(self, on_bad: str) -> None:
        if on_bad not in BAD_POLICIES:
            raise DataError(f"bad-annotation policy must be one of {', '.join(BAD_POLICIES)}, "
                            f"got {on_bad!r}")
        self.on_bad = on_bad
        self.skipped: list[str] = []

    def report(self, where: str, reason: str) -> None:
        if self.on_bad == "error":
            raise DataError(f"{where}: {reason} (skip such annotations with the 'skip' policy)")
        self.skipped.append(f"{where}: {reason}")


def check_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[
        tuple[float, float, float, float] | None, str | None]:
    """(the box clipped to the image, None), or (None, why it is bad)."""
    x1, y1, x2, y2 = box
    if not all(math.isfinite(v) for v in box):
        return None, f"box {list(box)} is not finite"
    if x2 <= x1 or y2 <= y1:
        return None, f"box {list(box)} has zero or negative area"
    t = EDGE_TOLERANCE
    if x1 < -t or y1 < -t or x2 > width + t or y2 > height + t:
        return None, f"box {list(box)} lies outside the {width}x{height} image"
    return (max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))), None


def make_sample(image: Path, width: int, height: int, objects: list[tuple], where: str,
                problems: Problems) -> Sample:
    """objects: (box, label, ignore[, area]) with label None for an unknown class."""
    boxes, labels, ignore, areas = [], [], [], []
    for obj in objects:
        box, label, flag = obj[:3]
        if label is None:
            problems.report(where, f"unknown class {obj[3] if len(obj) > 3 else ''!s}".strip())
            continue
        clipped, reason = check_box(box, width, height)
        if reason is not None:
            problems.report(where, reason)
            continue
        boxes.append(clipped)
        labels.append(label)
        ignore.append(flag)
        areas.append(obj[4] if len(obj) > 4 else None)
    has_areas = bool(areas) and all(a is not None for a in areas)
    return Sample(image, width, height, np.asarray(boxes, np.float32).reshape(-1, 4),
                  np.asarray(labels, np.int64), np.asarray(ignore, bool),
                  np.asarray(areas, np.float64) if has_areas else None)


# --- Splits.


def read_split(root: Path, split: str | None) -> list[str] | None:
    """The names a split lists: `split` is a file, or a name looked up as splits/NAME.txt or VOC's
    ImageSets/Main/NAME.txt. Lines are image file names or their stems."""
    if split is None:
        return None
    candidates = [Path(split), root / "splits" / f"{split}.txt", root / "ImageSets" / "Main" / f"{split}.txt"]
    for path in candidates:
        if path.is_file():
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            if not names:
                raise DataError(f"split file {path} lists no images")
            return names
    raise DataError(f"no split {split!r} in {root} (looked for splits/{split}.txt and "
                    f"ImageSets/Main/{split}.txt)")


def select(data: DetectionData, names: list[str] | None, where: str) -> DetectionData:
    if names is None:
        return data
    by_key = {}
    for s in data.samples:
        by_key[s.name] = s
        by_key.setdefault(s.image.stem, s)
    missing = [n for n in names if n not in by_key]
    # under the skip policy, an image dropped for a bad annotation is named in `skipped`
    really_missing = [n for n in missing if not any(Path(n).stem in entry for entry in data.skipped)]
    if really_missing:
        raise DataError(f"{where} lists {really_missing[0]}, which the annotations do not have")
    samples = [by_key[n] for n in names if n in by_key]
    return DetectionData(data.classes, samples, data.source, data.skipped)


# --- PASCAL VOC.


def first_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def text(element: ET.Element, path: str, where: str) -> str:
    found = element.find(path)
    if found is None or found.text is None:
        raise DataError(f"{where}: no <{path}>")
    return found.text.strip()


def read_voc_file(xml_path: Path, images: Path, class_index: dict[str, int] | None,
                  problems: Problems) -> tuple[Sample | None, list[str]]:
    """One VOC file -> (Sample, its class names in order), or (None, []) when skipped."""
    where = str(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
        filename = text(root, "filename", where)
        width = int(float(text(root, "size/width", where)))
        height = int(float(text(root, "size/height", where)))
        raw = []
        for obj in root.iter("object"):
            name = text(obj, "name", where)
            box = tuple(float(text(obj, f"bndbox/{k}", where)) for k in ("xmin", "ymin", "xmax", "ymax"))
            difficult = obj.find("difficult")
            raw.append((box, name, difficult is not None and (difficult.text or "0").strip() == "1"))
    except (ET.ParseError, DataError, ValueError, OSError) as error:
        problems.report(where, f"not a readable VOC annotation ({str(error).removeprefix(where + ': ')})")
        return None, []
    image = images / filename
    if not image.is_file():
        problems.report(where, f"its image {image} does not exist")
        return None, []
    if width < 1 or height < 1:
        problems.report(where, f"image size {width}x{height} is not positive")
        return None, []
    names = [name for _, name, _ in raw]
    objects = [(box, (class_index or {}).get(name, -1) if class_index is not None else 0, flag, name)
               for box, name, flag in raw]
    objects = [(b, None if lab == -1 else lab, f, n) for b, lab, f, n in objects]
    return make_sample(image, width, height, objects, where, problems), names


def load_voc(root: str | Path, split: str | None = None, classes: tuple[str, ...] | None = None,
             on_bad: str = "error") -> DetectionData:
    """A VOC folder: annotations/ (or Annotations/) of XML files and images/ (or JPEGImages/).
    `classes`: the class list (others are unknown); default: every name found, sorted."""
    root = Path(root)
    annotations, images = first_dir(root, VOC_ANNOTATIONS), first_dir(root, VOC_IMAGES)
    if annotations is None or images is None:
        raise DataError(f"{root} is not a VOC folder: expected annotations/ (or Annotations/) and "
                        "images/ (or JPEGImages/)")
    files = sorted(annotations.glob("*.xml"))
    if not files:
        raise DataError(f"{annotations} holds no .xml annotation files")
    problems = Problems(on_bad)
    if classes is None:  # a first pass for the names: labels must not depend on the split
        names: set[str] = set()
        for xml_path in files:
            try:
                objects = ET.parse(xml_path).getroot().iter("object")
                names.update(o.findtext("name", "").strip() for o in objects)
            except (ET.ParseError, OSError):
                pass  # reported by the second pass
        classes = tuple(sorted(n for n in names if n))
    index = {name: i for i, name in enumerate(classes)}
    samples = []
    for xml_path in files:
        sample, _ = read_voc_file(xml_path, images, index, problems)
        if sample is not None:
            samples.append(sample)
    data = DetectionData(tuple(classes), samples, str(annotations), problems.skipped)
    return select(data, read_split(root, split), f"split {split}")


# --- COCO.


def find_coco_json(root: Path) -> Path:
    if root.is_file():
        return root
    found = sorted((root / "annotations").glob("instances_*.json")) if (root / "annotations").is_dir() else []
    if len(found) != 1:
        raise DataError(f"{root}: expected one annotations/instances_*.json, found {len(found)}")
    return found[0]


def coco_images_dir(json_path: Path, root: Path) -> Path:
    """instances_train2017.json -> ROOT/train2017 (COCO's layout), else ROOT/images, else ROOT."""
    base = root if root.is_dir() else json_path.parent.parent
    for candidate in (base / json_path.stem.removeprefix("instances_"), base / "images", base):
        if candidate.is_dir():
            return candidate
    return base


def read_json(path: Path) -> dict:
    try:
        values = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a readable COCO json ({error})") from None
    if not isinstance(values, dict) or not {"images", "annotations", "categories"} <= values.keys():
        raise DataError(f"{path}: not a COCO instances file (needs images, annotations, categories)")
    return values


def load_coco(root: str | Path, split: str | None = None, on_bad: str = "error") -> DetectionData:
    """A COCO instances json (`root` is the file, or a folder with annotations/instances_*.json)
    and its images. Classes are the json's categories, in id order (COCO's 80, not 91)."""
    root = Path(root)
    json_path = find_coco_json(root)
    values = read_json(json_path)
    images = coco_images_dir(json_path, root)
    categories = sorted(values["categories"], key=lambda c: c["id"])
    classes = tuple(c["name"] for c in categories)
    label_of = {c["id"]: i for i, c in enumerate(categories)}
    by_image: dict[int, list[dict]] = {}
    for ann in values["annotations"]:
        by_image.setdefault(ann.get("image_id"), []).append(ann)
    problems = Problems(on_bad)
    samples = []
    for info in values["images"]:
        where = f"{json_path} (image {info.get('file_name')}, id {info.get('id')})"
        image = images / str(info.get("file_name"))
        if not image.is_file():
            problems.report(where, f"its image {image} does not exist")
            continue
        objects = []
        for ann in by_image.get(info["id"], []):
            x, y, w, h = (float(v) for v in ann["bbox"])
            objects.append(((x, y, x + w, y + h), label_of.get(ann["category_id"]),
                            bool(ann.get("iscrowd", 0)), f"id {ann['category_id']}",
                            ann.get("area")))
        samples.append(make_sample(image, int(info["width"]), int(info["height"]), objects, where, problems))
    data = DetectionData(classes, samples, str(json_path), problems.skipped)
    return select(data, read_split(root if root.is_dir() else json_path.parent.parent, split),
                  f"split {split}")


def detection_format(path: Path) -> str:
    """'coco' or 'voc', from what the folder holds."""
    if path.is_file() and path.suffix == ".json":
        return "coco"
    if (path / "annotations").is_dir() and any((path / "annotations").glob("instances_*.json")):
        return "coco"
    if first_dir(path, VOC_ANNOTATIONS) is not None:
        return "voc"
    if not path.exists():
        raise DataError(f"{path} does not exist")
    raise DataError(f"{path} is neither a COCO folder (annotations/instances_*.json) nor a VOC "
                    "folder (annotations/*.xml with images/)")


def load_detection(path: str | Path, split: str | None = None, on_bad: str = "error",
                   classes: tuple[str, ...] | None = None) -> DetectionData:
    """A detection data set in either format; `split`: a split name or a file of image names."""
    path = Path(path)
    if detection_format(path) == "coco":
        return load_coco(path, split, on_bad)
    return load_voc(path, split, classes, on_bad)
