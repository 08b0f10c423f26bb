"""Evaluating a detector on annotated data, and detecting objects in image files.

    scores = evaluate_detector(load_detector("runs/det"), load_detection(DATA, "test"))
    results = detect_files(detector, ["photo.jpg"])          # -> [FileDetections]
    annotate(image, results[0].detections, detector.classes).save("photo.det.png")
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from googlenet.data.images import BadImage
from googlenet.detection.data import DetectionData
from googlenet.detection.detector import Detector
from googlenet.detection.metrics import Detections, DetectionScores, GroundTruth, score
from googlenet.detection.regions import load_image
from googlenet.errors import DataError
from googlenet.inference.predictor import find_images

COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230))


def evaluate_detector(detector: Detector, data: DetectionData,
                      on_image: Callable[[int, int], None] | None = None) -> DetectionScores:
    """COCO mAP, AP50 and AP75 (pycocotools) and VOC AP50 per class of `detector` on `data`;
    unreadable images are left out and named. images/s counts detection only (from the decoded
    image: proposals, the network, NMS), not decoding."""
    if tuple(detector.classes) != tuple(data.classes):
        raise DataError(f"the detector's classes {list(detector.classes)[:5]} differ from the data's "
                        f"{list(data.classes)[:5]} ({data.source})")
    truth, found, skipped, seconds = [], [], [], 0.0
    for index, sample in enumerate(data.samples):
        try:
            raw, image = load_image(sample.image)
        except (BadImage, OSError) as error:
            skipped.append(f"{sample.image}: {error}")
            continue
        start = time.perf_counter()
        found.append(detector.detect(image, raw))
        seconds += time.perf_counter() - start
        truth.append(GroundTruth(sample.width, sample.height, sample.boxes, sample.labels, sample.ignore,
                                 sample.areas))
        if on_image is not None:
            on_image(index + 1, len(data.samples))
    if not truth:
        raise DataError(f"no readable images to evaluate in {data.source}")
    return score(truth, found, data.classes, seconds, skipped)


@dataclass
class FileDetections:
    file: str
    detections: Detections | None
    size: tuple[int, int] | None = None  # width, height
    error: str | None = None

    def to_dict(self, classes: Sequence[str]) -> dict:
        if self.detections is None:
            return {"file": self.file, "error": self.error}
        d = self.detections
        return {"file": self.file, "width": self.size[0], "height": self.size[1], "detections": [
            {"class": classes[int(label)], "score": round(float(s), 5),
             "box": [round(float(v), 2) for v in box]}
            for box, s, label in zip(d.boxes, d.scores, d.labels)]}


def detect_files(detector: Detector, inputs: Sequence[str | Path],
                 on_file: Callable[[FileDetections, Image.Image | None], None] | None = None
                 ) -> list[FileDetections]:
    """Detections in each image file (folders searched); a file that cannot be read gets its
    error and the others go on. `on_file` sees each result with its decoded image."""
    results = []
    for path in find_images(inputs):
        try:
            raw, image = load_image(path)
        except (BadImage, OSError) as error:
            result, image = FileDetections(str(path), None, error=str(error)), None
        else:
            result = FileDetections(str(path), detector.detect(image, raw), image.size)
        results.append(result)
        if on_file is not None:
            on_file(result, image)
    return results


def annotate(image: Image.Image, detections: Detections, classes: Sequence[str],
             min_score: float = 0.0) -> Image.Image:
    """A copy of `image` with each detection's box, class and score drawn on it."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    # lines and labels grow with the picture, so that they stay legible on a large photograph
    font = ImageFont.load_default(max(11, round(min(out.size) / 30)))
    for box, s, label in zip(detections.boxes, detections.scores, detections.labels):
        if s < min_score:
            continue
        colour = COLOURS[int(label) % len(COLOURS)]
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=max(2, round(min(out.size) / 200)))
        text = f"{classes[int(label)]} {s:.2f}"
        left, top, right, bottom = draw.textbbox((x1 + 2, y1), text, font=font)
        draw.rectangle((x1, top, right + 2, bottom + 2), fill=colour)
        draw.text((x1 + 2, y1), text, fill=(0, 0, 0), font=font)
    return out
