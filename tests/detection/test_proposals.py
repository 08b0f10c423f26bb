"""Selective Search proposals (OpenCV), their cache and their recall; warped, labelled regions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from detection_scenes import RACCOON, SCENES, need, picture

from googlenet.detection.data import Sample, load_detection
from googlenet.detection.proposals import ProposalCache, measure_recall, selective_search
from googlenet.detection.regions import BACKGROUND, RegionConfig, choose_regions, extract_regions, warp
from googlenet.errors import ConfigError


def test_proposals_find_flat_boxes_and_stay_in_the_image():
    name, size, boxes = SCENES[1]
    rgb = np.asarray(picture(size, boxes, 0))
    found = selective_search(rgb, "fast")
    assert found.shape[1] == 4 and len(found) > 5
    assert (found[:, 0] >= 0).all() and (found[:, 2] <= size[0]).all() and (found[:, 3] <= size[1]).all()
    assert (found[:, 2] > found[:, 0]).all() and (found[:, 3] > found[:, 1]).all()
    sample = Sample(None, *size, np.array([b[:4] for b in boxes], np.float32), np.array([0, 1]),
                    np.array([False, False]))
    from googlenet.detection.proposals import best_overlaps

    assert (best_overlaps(found, sample.boxes) >= 0.7).all()  # flat boxes are easy to segment
    with pytest.raises(ConfigError, match="fast, coarse"):
        selective_search(rgb, "quality")


def test_recall_and_the_cache(voc, tmp_path):
    data = load_detection(voc)
    cache = ProposalCache(tmp_path / "cache")
    first = measure_recall(data.samples, "fast", cache=cache)
    assert (first.images, first.objects) == (3, 4)
    assert first.recall[0.5] == 1.0 and first.recall[0.7] >= 0.75 and first.proposals_per_image > 5
    assert len(list((tmp_path / "cache").glob("*-fast-500.npy"))) == 3
    again = measure_recall(data.samples, "fast", cache=cache)
    assert again.recall == first.recall and again.seconds_per_image < first.seconds_per_image


def test_the_coarse_setting_gives_fewer_proposals_on_a_photograph():
    need(RACCOON)
    samples = load_detection(RACCOON, "test").samples[:1]
    fast, coarse = (measure_recall(samples, s) for s in ("fast", "coarse"))
    assert coarse.proposals_per_image < 0.8 * fast.proposals_per_image  # Sec. 8: about half


def test_warp_takes_the_box_with_context():
    image = torch.zeros(3, 40, 60)
    image[0, 10:30, 20:40] = 1.0  # a red square
    inside = warp(image, torch.tensor([[20.0, 10.0, 40.0, 30.0]]), 16, context=0.0)
    assert inside.shape == (1, 3, 16, 16) and inside[0, 1].max() == 0
    assert inside[0, 0, 1:-1, 1:-1].min() > 0.99 and inside[0, 0].min() > 0.8  # bilinear at the edge
    framed = warp(image, torch.tensor([[20.0, 10.0, 40.0, 30.0]]), 16, context=0.25)
    assert framed[0, 0, 8, 8] > 0.99 and framed[0, 0, 0, 0] < 0.01  # half of it is context


def test_regions_are_labelled_by_iou_in_the_documented_ratio(voc, tmp_path):
    data = load_detection(voc)
    sample = data.samples[1]
    proposals = np.array([[30, 20, 70, 40], [31, 21, 69, 39], [0, 0, 10, 10], [40, 60, 79, 95]], np.float32)
    config = RegionConfig(positives=16, background_ratio=3.0, min_background=1)
    boxes, labels = choose_regions(proposals, sample, config, np.random.default_rng(0))
    assert labels[:2] == [0, 1]  # the ground-truth boxes themselves
    assert sorted(labels[2:4]) == [0, 0]  # both proposals on the bar (IoU >= 0.5)
    assert labels[4:] == [-1, -1]  # below 0.5: background, all there are (fewer than 3 x 4)
    many = np.concatenate([proposals, np.array([[x, 0, x + 8, 8] for x in range(0, 72, 4)], np.float32)])
    boxes, labels = choose_regions(many, sample, config, np.random.default_rng(0))
    assert labels.count(-1) == 3 * 4 and len(boxes) == 16  # 2 + 2 objects, 3 x 4 background
    counts = extract_regions(data, tmp_path / "regions", RegionConfig(warp_size=24), ProposalCache(None))
    assert counts.images == 3 and counts.objects >= 4 and counts.background > 0
    assert len(list((tmp_path / "regions").rglob("*.png"))) == counts.objects + counts.background
    folders = sorted(p.name for p in (tmp_path / "regions").iterdir())
    assert folders == sorted([BACKGROUND, "bar", "square"])


def test_all_background_keeps_every_proposal_and_repeats_the_objects_to_the_ratio(voc):
    sample = load_detection(voc).samples[1]
    objects = np.array([[30, 20, 70, 40], [31, 21, 69, 39]], np.float32)  # on the bar: IoU >= 0.5
    background = np.array([[x, 0, x + 8, 8] for x in range(0, 80, 4)], np.float32)  # 20, IoU 0
    proposals = np.concatenate([objects, background])
    for ratio, repeats in ((3.0, 2), (1.0, 5), (10.0, 1)):  # round(20 / (ratio x 4)), at least 1
        config = RegionConfig(background_ratio=ratio, all_background=True)
        boxes, labels = choose_regions(proposals, sample, config, np.random.default_rng(0))
        assert labels.count(-1) == 20 and len(labels) - 20 == 4 * repeats and len(boxes) == len(labels)
        kept = boxes[labels.index(-1):].tolist()
        assert sorted(map(tuple, kept)) == sorted(map(tuple, background.tolist()))
        assert sorted(labels[:4 * repeats]) == sorted([0, 1, 0, 0] * repeats)  # 2 ground truth + 2


def test_an_unreadable_image_is_skipped_and_named(voc, tmp_path):
    (voc / "images" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    counts = extract_regions(load_detection(voc), tmp_path / "regions", RegionConfig(warp_size=16),
                             ProposalCache(None))
    assert counts.images == 2 and len(counts.skipped) == 1 and "b.png" in counts.skipped[0]
