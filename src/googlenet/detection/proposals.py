"""Region proposals by Selective Search (Uijlings et al. 2013; OpenCV's ximgproc implementation),
as R-CNN and the paper (Sec. 8) use them, and their recall of the ground truth.

Two settings:
- `fast`: OpenCV's "fast" Selective Search (HSV and Lab colour spaces, Felzenszwalb
  segmentation with k = 150 and 300, the colour+fill+size+texture strategies);
- `coarse`: the paper's: "the superpixel size was increased by 2x", which "halves the
  proposals" (Sec. 8): the same with k doubled (300 and 600).
The paper adds 200 MultiBox proposals to these; we do not (no MultiBox model here).

Images are shrunk to `max_side` pixels (default 500, R-CNN's order of size) before the search,
and the boxes scaled back. Proposals are cached per image file content and setting.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from googlenet.errors import ConfigError
from googlenet.runtime.files import atomic_path

SETTINGS = ("fast", "coarse")
BASE_K = {"fast": 150, "coarse": 300}  # OpenCV's fast mode: base_k 150, inc_k 150
DEFAULT_MAX_SIDE = 500
MIN_SIDE = 4.0  # proposals thinner than this (pixels, original image) are dropped


def require_opencv():  # noqa: ANN201 - the cv2 module
    try:
        import cv2
        from cv2.ximgproc import segmentation  # noqa: F401 - only in opencv-contrib
    except ImportError:
        raise ConfigError("Selective Search needs OpenCV's contrib modules: "
                          "pip install 'googlenet[detect]' (opencv-contrib-python-headless)") from None
    return cv2


def selective_search(rgb: np.ndarray, setting: str = "coarse", max_side: int = DEFAULT_MAX_SIDE,
                     threads: int = 1) -> np.ndarray:
    """Proposals for an H x W x 3 uint8 RGB image: K x 4 float32 (x1, y1, x2, y2), in Selective
    Search's order (its ranking, most object-like first), duplicates removed."""
    if setting not in SETTINGS:
        raise ConfigError(f"proposal setting must be one of {', '.join(SETTINGS)}, got {setting!r}")
    cv2 = require_opencv()
    cv2.setNumThreads(threads)
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = rgb if scale == 1.0 else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(np.ascontiguousarray(small[:, :, ::-1]))  # OpenCV wants BGR
    k = BASE_K[setting]
    search.switchToSelectiveSearchFast(k, k)
    rects = np.asarray(search.process(), np.float32).reshape(-1, 4)  # x, y, w, h
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
        return f"{hashlib.sha256(data).hexdigest()[:32]}-{setting}-{max_side}.npy"

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
