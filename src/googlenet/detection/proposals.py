"""Region proposals by Selective Search (Uijlings et al. 2013; OpenCV's ximgproc implementation),
as R-CNN and the paper (Sec. 8) use them, and their recall of the ground truth.

Every setting is Selective Search's "fast" mode, built from OpenCV's own pieces (its graph
segmentation and its strategy classes): the image in HSV and in Lab, a Felzenszwalb-Huttenlocher
segmentation (sigma 0.8) per threshold k, and two grouping strategies per segmentation
(colour+texture+size+fill and texture+size+fill). The settings differ in k and the smallest
segment, and in the smallest box kept:
- `rcnn`: R-CNN's (selective_search_boxes.m, fast mode): k = 50 and 100, minSize = k, boxes of
  at least 20 pixels a side;
- `paper`: Sec. 8, "the superpixel size was increased by 2x" on R-CNN's: k = 100 and 200,
  minSize = k, boxes of at least 20 pixels;
- `opencv-fast`: OpenCV's switchToSelectiveSearchFast(): k = 150, 300 and 450, its graph
  segmentation's default minimum size of 100 (the equivalent built here gives the same boxes);
- `opencv-fast-2x`: the same with k doubled (300, 600, 900): this project's former `coarse`.
The paper adds 200 MultiBox proposals to these; we do not (no MultiBox model here).

Images are shrunk to `max_side` pixels (default 500; R-CNN's detection demo searches at a width
of 500) before the search, and the boxes scaled back; R-CNN's 20 pixels are counted at the
search's scale, as R-CNN counts them. Proposals are cached per image file content and setting.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from googlenet.errors import ConfigError
from googlenet.extras import import_extra
from googlenet.runtime.files import atomic_path


@dataclass(frozen=True)
class SearchSetting:
    """One configuration of Selective Search's fast mode."""

    ks: tuple[int, ...]  # Felzenszwalb-Huttenlocher thresholds: one segmentation each
    min_sizes: tuple[int, ...]  # each segmentation's smallest segment (pixels)
    min_box: int = 0  # boxes narrower or lower than this (pixels, at the search's scale) are dropped
    sigma: float = 0.8  # the segmentation's Gaussian smoothing (R-CNN's and OpenCV's)


RCNN_MIN_BOX = 20  # R-CNN's minBoxWidth
SETTINGS = {
    "paper": SearchSetting((100, 200), (100, 200), RCNN_MIN_BOX),
    "rcnn": SearchSetting((50, 100), (50, 100), RCNN_MIN_BOX),
    "opencv-fast": SearchSetting((150, 300, 450), (100, 100, 100)),
    "opencv-fast-2x": SearchSetting((300, 600, 900), (100, 100, 100)),
}
DEFAULT_SETTING = "paper"
FORMER_NAMES = {"fast": "opencv-fast", "coarse": "opencv-fast-2x"}  # as runs of googlenet 0.2 name them
DEFAULT_MAX_SIDE = 500
MIN_SIDE = 4.0  # proposals thinner than this (pixels, original image) are dropped


def require_opencv():
    # cv2.ximgproc: only in opencv-contrib (not with opencv-python beside it)
    import_extra("cv2.ximgproc.segmentation", "detect", "Selective Search (OpenCV's contrib modules)")
    return import_extra("cv2", "detect", "Selective Search")


def setting_named(name: str) -> SearchSetting:
    """A setting by name (the names of older runs included)."""
    name = FORMER_NAMES.get(name, name)
    if name not in SETTINGS:
        raise ConfigError(f"proposal setting must be one of {', '.join(SETTINGS)}, got {name!r}")
    return SETTINGS[name]


def fast_mode_search(bgr: np.ndarray, setting: SearchSetting):
    """OpenCV's SelectiveSearchSegmentation set up as its switchToSelectiveSearchFast() does, with
    the setting's thresholds and minimum sizes (that method fixes the minimum size at 100)."""
    cv2 = require_opencv()
    seg = cv2.ximgproc.segmentation
    search = seg.createSelectiveSearchSegmentation()
    for code in (cv2.COLOR_BGR2HSV, cv2.COLOR_BGR2Lab):
        search.addImage(cv2.cvtColor(bgr, code))
    for k, min_size in zip(setting.ks, setting.min_sizes, strict=True):
        search.addGraphSegmentation(seg.createGraphSegmentation(setting.sigma, k, min_size))
    fill, texture, size = (seg.createSelectiveSearchSegmentationStrategyFill(),
                           seg.createSelectiveSearchSegmentationStrategyTexture(),
                           seg.createSelectiveSearchSegmentationStrategySize())
    colour = seg.createSelectiveSearchSegmentationStrategyColor()
    search.addStrategy(seg.createSelectiveSearchSegmentationStrategyMultiple(colour, fill, texture, size))
    search.addStrategy(seg.createSelectiveSearchSegmentationStrategyMultiple(fill, texture, size))
    return search


def selective_search(rgb: np.ndarray, setting: str = DEFAULT_SETTING,
                     max_side: int = DEFAULT_MAX_SIDE, threads: int = 1) -> np.ndarray:
    """Proposals for an H x W x 3 uint8 RGB image: K x 4 float32 (x1, y1, x2, y2), in Selective
    Search's order (its ranking, most object-like first), duplicates removed."""
    chosen = setting_named(setting)
    cv2 = require_opencv()
    cv2.setNumThreads(threads)
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = rgb if scale == 1.0 else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    search = fast_mode_search(np.ascontiguousarray(small[:, :, ::-1]), chosen)  # OpenCV wants BGR
    rects = np.asarray(search.process(), np.float32).reshape(-1, 4)  # x, y, w, h
    rects = rects[(rects[:, 2] >= chosen.min_box) & (rects[:, 3] >= chosen.min_box)]
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1) / scale
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    keep = ((boxes[:, 2] - boxes[:, 0]) >= MIN_SIDE) & ((boxes[:, 3] - boxes[:, 1]) >= MIN_SIDE)
    boxes = boxes[keep]
    _, first = np.unique(np.round(boxes), axis=0, return_index=True)
    return boxes[np.sort(first)]


@dataclass(frozen=True)
class ProposalCache:
    """Proposals on disk, one .npy per (image content, setting, max_side); None: no cache."""

    folder: Path | None

    def key(self, data: bytes, setting: str, max_side: int) -> str:
        name = FORMER_NAMES.get(setting, setting)
        return f"{hashlib.sha256(data).hexdigest()[:32]}-{name}-{max_side}.npy"

    def get(self, data: bytes, setting: str, max_side: int) -> np.ndarray | None:
        if self.folder is None:
            return None
        path = self.folder / self.key(data, setting, max_side)
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):  # a damaged cache entry is computed again
            return None

    def put(self, data: bytes, setting: str, max_side: int, boxes: np.ndarray) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / self.key(data, setting, max_side)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, boxes, allow_pickle=False)


def proposals_for(data: bytes, rgb: np.ndarray, setting: str, max_side: int,
                  cache: ProposalCache) -> np.ndarray:
    """Proposals of one image (its file's bytes, for the cache key, and its decoded pixels)."""
    boxes = cache.get(data, setting, max_side)
    if boxes is None:
        boxes = selective_search(rgb, setting, max_side)
        cache.put(data, setting, max_side, boxes)
    return boxes


@dataclass(frozen=True)
class Recall:
    """How many ground-truth boxes some proposal covers at each IoU threshold."""

    setting: str
    images: int
    objects: int
    proposals_per_image: float
    recall: dict[float, float]  # IoU threshold -> fraction of ground-truth boxes covered
    seconds_per_image: float


def best_overlaps(proposals: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """For each ground-truth box, its highest IoU with any proposal."""
    import torch
    from torchvision.ops import box_iou

    if len(gt) == 0:
        return np.zeros(0)
    if len(proposals) == 0:
        return np.zeros(len(gt))
    return box_iou(torch.from_numpy(gt).float(), torch.from_numpy(proposals).float()).max(1).values.numpy()


def recall_of(overlaps: list[np.ndarray], counts: list[int], setting: str, seconds: float,
              thresholds: tuple[float, ...] = (0.5, 0.7)) -> Recall:
    joined = np.concatenate(overlaps) if overlaps else np.zeros(0)
    n = max(len(joined), 1)
    return Recall(setting, len(counts), len(joined), float(np.mean(counts)) if counts else 0.0,
                  {t: float((joined >= t).sum() / n) for t in thresholds},
                  seconds / max(len(counts), 1))


def image_proposals(path: Path, setting: str, max_side: int, cache: ProposalCache) -> np.ndarray:
    """Proposals of one image file (BadImage when it cannot be decoded)."""
    from googlenet.data.images import decode_image, read_file

    data = read_file(path)
    cached = cache.get(data, setting, max_side)
    if cached is not None:
        return cached
    return proposals_for(data, np.asarray(decode_image(data)), setting, max_side, cache)


def measure_recall(samples: list, setting: str, max_side: int = DEFAULT_MAX_SIDE,
                   cache: ProposalCache = ProposalCache(None),
                   thresholds: tuple[float, ...] = (0.5, 0.7)) -> Recall:
    """Recall of the samples' (googlenet.detection.data.Sample) non-ignored boxes by the
    proposals of `setting`; unreadable images are left out. The time counts the searches
    (cached images cost nothing, so time with an empty cache)."""
    import time

    from googlenet.data.images import BadImage

    overlaps, counts, start = [], [], time.perf_counter()
    for sample in samples:
        try:
            boxes = image_proposals(sample.image, setting, max_side, cache)
        except (BadImage, OSError):
            continue
        overlaps.append(best_overlaps(boxes, sample.boxes[~sample.ignore]))
        counts.append(len(boxes))
    return recall_of(overlaps, counts, setting, time.perf_counter() - start, thresholds)
