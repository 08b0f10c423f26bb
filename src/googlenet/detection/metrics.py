"""Detection accuracy the standard ways: COCO's mAP@[.5:.95], AP50 and AP75 computed by
pycocotools itself, and PASCAL VOC's AP at IoU 0.5 (all-point interpolation, VOC 2010 on),
per class.

Ground truth and detections are in-memory objects; pycocotools gets them as COCO dictionaries
(boxes [x, y, w, h]), with crowd regions and difficult objects marked `iscrowd` (ignored by
its matching, as COCO does).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np

from googlenet.extras import import_extra


@dataclass
class Detections:
    """One image's detections: boxes K x 4 (x1, y1, x2, y2, pixels of the original image),
    scores K, labels K (0-based indices into the data set's classes)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class GroundTruth:
    """One image's ground truth, as googlenet.detection.data.Sample holds it."""

    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    ignore: np.ndarray
    areas: np.ndarray | None = None


@dataclass(frozen=True)
class CocoScores:
    map: float  # mAP@[.5:.95], COCO's primary metric
    ap50: float
    ap75: float
    stats: tuple[float, ...]  # COCOeval.stats: the 12 numbers of its summary


def xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def coco_dicts(truth: list[GroundTruth], detections: list[Detections], num_classes: int
               ) -> tuple[dict, list[dict]]:
    """pycocotools' inputs: the ground truth as a COCO dataset dict, the detections as results."""
    images, annotations, results = [], [], []
    for image_id, (gt, det) in enumerate(zip(truth, detections), start=1):
        images.append({"id": image_id, "width": gt.width, "height": gt.height})
        for i, (box, label, ignore) in enumerate(zip(xywh(gt.boxes), gt.labels, gt.ignore)):
            area = float(gt.areas[i]) if gt.areas is not None else float(box[2] * box[3])
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(label) + 1, "bbox": [float(v) for v in box],
                                "area": area, "iscrowd": int(bool(ignore))})
        for box, score, label in zip(xywh(det.boxes), det.scores, det.labels):
            results.append({"image_id": image_id, "category_id": int(label) + 1,
                            "bbox": [float(v) for v in box], "score": float(score)})
    categories = [{"id": c + 1, "name": str(c)} for c in range(num_classes)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def coco_map(truth: list[GroundTruth], detections: list[Detections], num_classes: int) -> CocoScores:
    """pycocotools' COCOeval (bbox) over the images; its printing is kept out of our output."""
    COCO = import_extra("pycocotools.coco", "detect", "mAP").COCO
    COCOeval = import_extra("pycocotools.cocoeval", "detect", "mAP").COCOeval
    dataset, results = coco_dicts(truth, detections, num_classes)
    if not results or not dataset["annotations"]:
        return CocoScores(0.0, 0.0, 0.0, (0.0,) * 12)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = tuple(max(float(s), 0.0) for s in evaluation.stats)  # -1: no such objects
    return CocoScores(stats[0], stats[1], stats[2], stats)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` with every box of `b` (continuous coordinates, no +1)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def voc_ap(truth: list[GroundTruth], detections: list[Detections], label: int,
           iou_threshold: float = 0.5) -> float:
    """PASCAL VOC's AP of one class: detections sorted by score, each matched to the unmatched
    ground-truth box it overlaps most (at least `iou_threshold`), a second detection of a box a
    false positive, ignored (difficult) boxes neither; AP is the area under the precision
    envelope (all-point interpolation, VOC 2010 on). NaN when the class has no objects."""
    entries = []  # (score, image, box)
    positives = 0
    for image, (gt, det) in enumerate(zip(truth, detections)):
        positives += int(((gt.labels == label) & ~gt.ignore).sum())
        for box, score in zip(det.boxes[det.labels == label], det.scores[det.labels == label]):
            entries.append((float(score), image, box))
    if positives == 0:
        return float("nan")
    entries.sort(key=lambda e: -e[0])
    matched = [np.zeros(int((gt.labels == label).sum()), bool) for gt in truth]
    tp, fp = np.zeros(len(entries)), np.zeros(len(entries))
    for i, (_, image, box) in enumerate(entries):
        gt = truth[image]
        mask = gt.labels == label
        overlaps = iou_matrix(box[None].astype(np.float64), gt.boxes[mask].astype(np.float64))[0]
        if len(overlaps) == 0 or overlaps.max() < iou_threshold:
            fp[i] = 1
            continue
        best = int(overlaps.argmax())
        if gt.ignore[mask][best]:
            continue  # a difficult object: neither right nor wrong
        if matched[image][best]:
            fp[i] = 1
        else:
            matched[image][best] = True
            tp[i] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / positives
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return area_under_envelope(recall, precision)


def area_under_envelope(recall: np.ndarray, precision: np.ndarray) -> float:
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    steps = np.where(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


@dataclass(frozen=True)
class DetectionScores:
    coco: CocoScores
    voc_ap50: dict[str, float]  # per class with objects
    images: int
    images_per_second: float
    skipped: list[str]  # unreadable images, named

    @property
    def voc_map50(self) -> float:
        values = [v for v in self.voc_ap50.values() if not np.isnan(v)]
        return float(np.mean(values)) if values else 0.0

    def to_dict(self) -> dict:
        return {"map": self.coco.map, "ap50": self.coco.ap50, "ap75": self.coco.ap75,
                "voc_ap50": self.voc_ap50, "voc_map50": self.voc_map50, "images": self.images,
                "images_per_second": self.images_per_second, "skipped": self.skipped}


def score(truth: list[GroundTruth], detections: list[Detections], classes: tuple[str, ...],
          seconds: float, skipped: list[str]) -> DetectionScores:
    voc = {name: voc_ap(truth, detections, i) for i, name in enumerate(classes)}
    voc = {name: value for name, value in voc.items() if not np.isnan(value)}
    return DetectionScores(coco_map(truth, detections, len(classes)), voc, len(truth),
                           len(truth) / seconds if seconds > 0 else 0.0, skipped)
