"""Selective Search proposals (OpenCV), their cache and their recall; warped, labelled regions."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from detection_scenes import RACCOON, SCENES, need, picture

from googlenet.data.preprocessing import preset
from googlenet.data.transforms import Normalize
from googlenet.detection.data import Sample, load_detection
from googlenet.detection.proposals import (
    SETTINGS,
    ProposalCache,
    SearchSetting,
    fast_mode_search,
    measure_recall,
    selective_search,
)
from googlenet.detection.regions import (
    BACKGROUND,
    RegionConfig,
    choose_regions,
    extract_regions,
    mean_pixel,
    warp,
)
from googlenet.errors import ConfigError


def test_proposals_find_flat_boxes_and_stay_in_the_image():
    name, size, boxes = SCENES[1]
    rgb = np.asarray(picture(size, boxes, 0))
    found = selective_search(rgb, "opencv-fast")
    assert found.shape[1] == 4 and len(found) > 5
    assert (found[:, 0] >= 0).all() and (found[:, 2] <= size[0]).all() and (found[:, 3] <= size[1]).all()
    assert (found[:, 2] > found[:, 0]).all() and (found[:, 3] > found[:, 1]).all()
    sample = Sample(None, *size, np.array([b[:4] for b in boxes], np.float32), np.array([0, 1]),
                    np.array([False, False]))
    from googlenet.detection.proposals import best_overlaps

    assert (best_overlaps(found, sample.boxes) >= 0.7).all()  # flat boxes are easy to segment
    with pytest.raises(ConfigError, match="paper, rcnn, opencv-fast, opencv-fast-2x"):
        selective_search(rgb, "quality")


def test_recall_and_the_cache(voc, tmp_path):
    data = load_detection(voc)
    cache = ProposalCache(tmp_path / "cache")
    first = measure_recall(data.samples, "opencv-fast", cache=cache)
    assert (first.images, first.objects) == (3, 4)
    assert first.recall[0.5] == 1.0 and first.recall[0.7] >= 0.75 and first.proposals_per_image > 5
    assert len(list((tmp_path / "cache").glob("*-opencv-fast-500.npy"))) == 3
    again = measure_recall(data.samples, "opencv-fast", cache=cache)
    assert again.recall == first.recall and again.seconds_per_image < first.seconds_per_image


def test_the_papers_setting_is_rcnns_with_the_superpixels_doubled():
    rcnn, paper = SETTINGS["rcnn"], SETTINGS["paper"]
    # R-CNN's selective_search_boxes.m, fast mode: k = 50 and 100, minSize = k, sigma 0.8, 20 pixels
    assert rcnn == SearchSetting(ks=(50, 100), min_sizes=(50, 100), min_box=20, sigma=0.8)
    assert paper.ks == tuple(2 * k for k in rcnn.ks) and paper.min_sizes == paper.ks  # Sec. 8: 2x
    assert (paper.min_box, paper.sigma) == (rcnn.min_box, rcnn.sigma)
    assert SETTINGS["opencv-fast-2x"].ks == tuple(2 * k for k in SETTINGS["opencv-fast"].ks)
    from googlenet.cli.detect import SETTINGS as CLI_SETTINGS
    from googlenet.detection.rcnn import RCNNSettings
    from googlenet.detection.train import DetectConfig

    assert CLI_SETTINGS == tuple(SETTINGS)
    assert RCNNSettings().setting == DetectConfig(data="").proposals == "paper"  # the default


def test_the_search_built_from_opencvs_pieces_is_opencvs_fast_mode():
    import cv2

    name, size, boxes = SCENES[2]
    bgr = np.ascontiguousarray(np.asarray(picture(size, boxes, 0))[:, :, ::-1])
    own = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    own.setBaseImage(bgr)
    own.switchToSelectiveSearchFast()  # k = 150, 300, 450 (base 150, step 150), min size 100
    built = fast_mode_search(bgr, SETTINGS["opencv-fast"])
    assert sorted(map(tuple, own.process())) == sorted(map(tuple, built.process()))
    halved = fast_mode_search(bgr, SearchSetting((150, 300, 450), (50, 50, 50)))
    assert sorted(map(tuple, own.process())) != sorted(map(tuple, halved.process()))


def test_rcnns_boxes_are_at_least_20_pixels_a_side_at_the_search_scale():
    need(RACCOON)
    from PIL import Image

    photo = Image.open(load_detection(RACCOON, "test").samples[0].image).convert("RGB")
    photo.thumbnail((160, 160))
    rgb = np.asarray(photo)
    for setting, smallest in (("rcnn", 20), ("paper", 20)):
        found = selective_search(rgb, setting, max_side=160)  # searched at this size
        assert len(found) > 20 and (found[:, 2:] - found[:, :2]).min() >= smallest
    opencv = selective_search(rgb, "opencv-fast", max_side=160)
    assert (opencv[:, 2:] - opencv[:, :2]).min() < 20  # the filter is R-CNN's, not OpenCV's
    half = selective_search(rgb, "paper", max_side=80)  # searched at half the size: 40 pixels here
    assert (half[:, 2:] - half[:, :2]).min() >= 2 * 20 - 1


def test_the_papers_setting_gives_about_half_rcnns_proposals_on_a_photograph():
    need(RACCOON)
    samples = load_detection(RACCOON, "test").samples[:1]
    rcnn, paper = (measure_recall(samples, s) for s in ("rcnn", "paper"))
    assert paper.proposals_per_image < 0.7 * rcnn.proposals_per_image  # Sec. 8: "halves"


def test_settings_of_older_runs_are_read_by_their_former_names():
    name, size, boxes = SCENES[1]
    rgb = np.asarray(picture(size, boxes, 0))
    for former, now in (("fast", "opencv-fast"), ("coarse", "opencv-fast-2x")):
        assert sorted(map(tuple, selective_search(rgb, former))) == sorted(
            map(tuple, selective_search(rgb, now)))
        assert ProposalCache(None).key(b"x", former, 500) == ProposalCache(None).key(b"x", now, 500)


def test_warp_takes_the_box_with_context():
    image = torch.zeros(3, 40, 60)
    image[0, 10:30, 20:40] = 1.0  # a red square
    black = (0.0, 0.0, 0.0)
    inside = warp(image, torch.tensor([[20.0, 10.0, 40.0, 30.0]]), 16, 0.0, black)
    assert inside.shape == (1, 3, 16, 16) and inside[0, 1].max() == 0
    assert inside[0, 0, 1:-1, 1:-1].min() > 0.99 and inside[0, 0].min() > 0.8  # bilinear at the edge
    framed = warp(image, torch.tensor([[20.0, 10.0, 40.0, 30.0]]), 16, 0.25, black)
    assert framed[0, 0, 8, 8] > 0.99 and framed[0, 0, 0, 0] < 0.01  # half of it is context


def test_context_beyond_the_image_is_the_classifiers_mean_pixel_as_in_rcnn():
    image = torch.rand(3, 40, 60, generator=torch.Generator().manual_seed(0))
    caffe = preset("caffe")
    fill = mean_pixel(caffe)
    assert fill == pytest.approx((123 / 255, 117 / 255, 104 / 255))  # BVLC's mean, as RGB in [0, 1]
    assert mean_pixel(replace(caffe, mean=(104.0, 117.0, 123.0), channel_order="BGR")) == fill
    whole = torch.tensor([[0.0, 0.0, 60.0, 40.0]])
    context = 16 / 227  # R-CNN's p = 16 at a 227-pixel warp
    crop = warp(image, whole, 227, context, fill)[0]  # the whole image, with its context
    inner = warp(image, whole, 227 - 2 * 16, 0.0, fill)[0]  # the image alone, at the inner size
    assert torch.allclose(crop[:, 17:-17, 17:-17], inner[:, 1:-1, 1:-1], atol=0.02)  # not shrunk
    normalised = Normalize(caffe)(crop)
    edge = 13  # of the 16 context pixels: the last ~3 blend with the image's edge (bilinear)
    for frame in (normalised[:, :edge], normalised[:, -edge:], normalised[:, :, :edge],
                  normalised[:, :, -edge:]):
        assert frame.abs().max() < 1e-3  # what the classifier sees there: zero, R-CNN's padding
    assert normalised[:, 20:-20, 20:-20].abs().min() > 0 and normalised.abs().max() > 50  # the image
    ramp = ((torch.arange(60) + 0.5) / 60).expand(3, 40, 60)  # the value at x is x / 60
    corner = warp(ramp, torch.tensor([[0.0, 0.0, 20.0, 20.0]]), 32, 0.25, fill)[0]
    assert torch.allclose(corner[:, :7, :7], torch.tensor(fill).reshape(3, 1, 1), atol=1e-5)
    x = -10 + 16.5 * 40 / 32  # column 16's centre in the widened box (-10, -10, 30, 30): not clipped
    assert corner[:, 16, 16] == pytest.approx([x / 60] * 3, abs=1e-4)


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
