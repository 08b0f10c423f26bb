"""Detection data: VOC and COCO readers, split lists, the bad-annotation policy, the shared sets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from detection_scenes import COCO128, RACCOON, SCENES, need, voc_xml

from googlenet.detection.data import load_coco, load_detection, load_voc
from googlenet.errors import DataError


def test_voc_reads_boxes_labels_and_splits(voc):
    data = load_detection(voc)
    assert data.classes == ("bar", "square")  # every name found, sorted
    assert [s.name for s in data.samples] == ["a.png", "b.png", "c.png"]
    b = data.samples[1]
    assert (b.width, b.height) == (80, 96)
    np.testing.assert_array_equal(b.boxes, [[30, 20, 70, 40], [5, 50, 35, 85]])
    assert list(b.labels) == [0, 1]  # bar, square
    assert [s.name for s in load_detection(voc, "train").samples] == ["a.png", "b.png"]
    assert [s.name for s in load_detection(voc, "test").samples] == ["c.png"]


def test_coco_reads_categories_in_id_order_and_xywh_boxes(coco):
    data = load_detection(coco)
    assert data.classes == ("square", "bar")  # ids 3, 7
    b = data.samples[1]
    np.testing.assert_array_equal(b.boxes, [[30, 20, 70, 40], [5, 50, 35, 85]])
    assert list(b.labels) == [1, 0]
    assert b.areas is not None and b.areas[0] == 800


def test_a_split_file_and_stems_select_images(voc, tmp_path):
    listing = tmp_path / "mine.txt"
    listing.write_text("c\na.png\n")
    assert [s.name for s in load_detection(voc, str(listing)).samples] == ["c.png", "a.png"]
    listing.write_text("zzz.png\n")
    with pytest.raises(DataError, match="zzz.png"):
        load_detection(voc, str(listing))
    with pytest.raises(DataError, match="no split 'val'"):
        load_detection(voc, "val")


@pytest.mark.parametrize("box, reason", [
    ((10, 10, 10, 40), "zero or negative area"),
    ((50, 10, 30, 40), "zero or negative area"),
    ((10, 10, 200, 40), "outside the 96x80 image"),
])
def test_bad_boxes_are_named_or_skipped_and_counted(voc, box, reason):
    xml = voc / "annotations" / "a.xml"
    xml.write_text(voc_xml("a.png", (96, 80), [(*box, 0), (1, 1, 20, 20, 0)]))
    with pytest.raises(DataError, match=rf"a\.xml: box .*{reason}"):
        load_voc(voc)
    data = load_voc(voc, on_bad="skip")
    assert len(data.skipped) == 1 and "a.xml" in data.skipped[0] and reason in data.skipped[0]
    assert len(data.samples[0].boxes) == 1  # the good box stays


def test_a_box_a_pixel_past_the_edge_is_clipped(voc):
    (voc / "annotations" / "a.xml").write_text(voc_xml("a.png", (96, 80), [(0, 0, 97, 80, 0)]))
    np.testing.assert_array_equal(load_voc(voc).samples[0].boxes, [[0, 0, 96, 80]])


def test_unknown_class_missing_image_and_broken_file(voc, coco):
    with pytest.raises(DataError, match="b.xml: unknown class bar"):
        load_voc(voc, classes=("square",))
    (voc / "images" / "c.png").unlink()
    with pytest.raises(DataError, match="c.xml: its image .*c.png does not exist"):
        load_voc(voc)
    (voc / "annotations" / "b.xml").write_text("<annotation><filename>")
    data = load_voc(voc, on_bad="skip")
    assert [s.name for s in data.samples] == ["a.png"] and len(data.skipped) == 2
    assert [s.name for s in load_voc(voc, "train", on_bad="skip").samples] == ["a.png"]  # b skipped
    path = coco / "annotations" / "instances_train2017.json"
    values = json.loads(path.read_text())
    values["annotations"][0]["category_id"] = 99
    path.write_text(json.dumps(values))
    where = r"instances_train2017.json \(image a.png, id 100\)"
    with pytest.raises(DataError, match=where + ": unknown class id 99"):
        load_coco(coco)
    assert len(load_coco(coco, on_bad="skip").skipped) == 1
    path.write_text("{")
    with pytest.raises(DataError, match="instances_train2017.json: not a readable COCO json"):
        load_coco(coco)


def test_not_a_detection_folder(tmp_path):
    with pytest.raises(DataError, match="neither a COCO folder"):
        load_detection(tmp_path)


def test_raccoon_is_read_with_its_split():
    need(RACCOON)
    train, test = load_detection(RACCOON, "train"), load_detection(RACCOON, "test")
    assert (len(train), len(test), train.classes) == (160, 40, ("raccoon",))
    everything = load_detection(RACCOON)
    assert sum(len(s.boxes) for s in everything.samples) == 217 and not everything.skipped


def test_coco128_is_read_with_its_split():
    need(COCO128)
    train, test = load_detection(COCO128, "train"), load_detection(COCO128, "test")
    assert (len(train), len(test), len(train.classes)) == (103, 25, 80)
    everything = load_detection(COCO128)
    assert sum(len(s.boxes) for s in everything.samples) == 939
    assert sum(int(s.ignore.sum()) for s in everything.samples) == 10  # crowd regions


assert SCENES  # the scenes the fixtures write
