"""mAP the standard way: pycocotools on a hand-made case whose answer is worked out below, and
VOC's all-point AP on the same case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from googlenet.detection.metrics import Detections, GroundTruth, coco_map, score, voc_ap

# One image, two objects of class 0. Detections by score: a perfect hit on the first (0.9), a
# false positive (0.8), a hit on the second (0.7) that overlaps it with IoU 0.62.
# Precision/recall after each: (1, 1/2), (1/2, 1/2), (2/3, 1).
TRUTH = [GroundTruth(100, 100, np.array([[10, 10, 30, 30], [50, 50, 60, 60]], np.float32),
                     np.array([0, 0]), np.array([False, False]))]
DETECTIONS = [Detections(np.array([[10, 10, 30, 30], [70, 70, 90, 90], [50, 50, 60, 56.2]], np.float32),
                         np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 0, 0]))]

# COCO interpolates precision at 101 recall points 0, 0.01, ..., 1 (its max precision at recall
# >= r). With both hits: 1 for the 51 points up to 0.5, 2/3 for the 50 above.
COCO_BOTH = (51 + 50 * 2 / 3) / 101  # 0.834983...
# Without the second hit (IoU thresholds above 0.62): 1 up to recall 0.5, 0 above.
COCO_FIRST = 51 / 101
# mAP@[.5:.95]: the second hit counts at 0.50, 0.55 and 0.60 of the ten thresholds.
COCO_MAP = (3 * COCO_BOTH + 7 * COCO_FIRST) / 10  # 0.603960...
VOC_AP50 = 0.5 * 1 + 0.5 * 2 / 3  # VOC: the area under the precision envelope: 0.8333...


def test_pycocotools_gives_the_worked_answer():
    scores = coco_map(TRUTH, DETECTIONS, num_classes=1)
    assert scores.ap50 == pytest.approx(COCO_BOTH, abs=1e-6)
    assert scores.ap75 == pytest.approx(COCO_FIRST, abs=1e-6)
    assert scores.map == pytest.approx(COCO_MAP, abs=1e-6)


def test_voc_ap50_all_point_interpolation():
    assert voc_ap(TRUTH, DETECTIONS, 0) == pytest.approx(VOC_AP50)
    assert voc_ap(TRUTH, DETECTIONS, 0, iou_threshold=0.7) == pytest.approx(0.5)
    assert math.isnan(voc_ap(TRUTH, DETECTIONS, 1))  # no objects of class 1


def test_a_second_detection_of_one_object_is_a_false_positive():
    twice = [Detections(np.array([[10, 10, 30, 30], [10, 10, 30, 30], [50, 50, 60, 60]], np.float32),
                        np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 0, 0]))]
    assert voc_ap(TRUTH, twice, 0) == pytest.approx(VOC_AP50)
    perfect = [Detections(TRUTH[0].boxes, np.array([0.9, 0.8], np.float32), np.array([0, 0]))]
    assert voc_ap(TRUTH, perfect, 0) == pytest.approx(1.0)
    assert coco_map(TRUTH, perfect, 1).map == pytest.approx(1.0)


def test_crowd_and_difficult_boxes_are_ignored_by_both():
    crowd = [GroundTruth(100, 100, np.array([[10, 10, 30, 30], [70, 70, 90, 90]], np.float32),
                         np.array([0, 0]), np.array([False, True]))]
    found = [Detections(np.array([[10, 10, 30, 30], [70, 70, 90, 90]], np.float32),
                        np.array([0.9, 0.95], np.float32), np.array([0, 0]))]
    assert voc_ap(crowd, found, 0) == pytest.approx(1.0)
    assert coco_map(crowd, found, 1).ap50 == pytest.approx(1.0)


def test_no_detections_score_zero():
    empty = [Detections.empty()]
    scores = score(TRUTH, empty, ("thing",), seconds=1.0, skipped=[])
    assert (scores.coco.map, scores.voc_ap50["thing"], scores.images_per_second) == (0.0, 0.0, 1.0)
