"""Fixtures of tests/detection: the small data sets of detection_scenes, in a fresh folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from detection_scenes import write_coco, write_voc


@pytest.fixture
def voc(tmp_path) -> Path:
    return write_voc(tmp_path / "voc")


@pytest.fixture
def coco(tmp_path) -> Path:
    return write_coco(tmp_path / "coco")
