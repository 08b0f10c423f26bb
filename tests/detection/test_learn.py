"""The learn-at-all check (issue 16): trained and evaluated on the same 8 raccoon photographs,
each detector reaches AP50 >= 0.9 (COCO's AP50, by pycocotools). Slow: minutes each on 2 cores.
Budgets are steps, not minutes, and threads are fixed: the run is the same on a busy machine.
The threshold's spread over seeds and thread counts: benchmarks/results/threshold_spread.md."""

from __future__ import annotations

import pytest
from detection_scenes import RACCOON, need
from trained_checks import detector_learns


@pytest.mark.slow
@pytest.mark.parametrize(("method", "seed"), [("rcnn", 0), ("rcnn", 1), ("faster-rcnn", 0)])
def test_each_detector_fits_eight_raccoons(method, seed, tmp_path):
    need(RACCOON)
    ap50 = detector_learns(RACCOON, method, seed, threads=2, work=tmp_path)
    assert ap50 >= 0.9, ap50
