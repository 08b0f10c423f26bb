"""The paper's detector (Sec. 8), R-CNN style: Selective Search proposals, each warped and
classified by GoogLeNet (objects and background), a score per class for every proposal, and
per-class non-maximum suppression. No bounding-box regression and no context model, as in the
paper's submission.

The region classifier is an ordinary GoogLeNet run: the warped crops are written as class
folders and `googlenet.training.loop.train` fine-tunes it (any model source as the start,
recipes, checkpoints, resume, logs), so the run directory is also a `googlenet train` run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.ops import batched_nms
from torchvision.transforms.functional import center_crop, pil_to_tensor

from googlenet.artifact.build import model_from_artifact
from googlenet.data.transforms import Normalize
from googlenet.detection.metrics import Detections
from googlenet.detection.proposals import DEFAULT_SETTING, ProposalCache, selective_search
from googlenet.detection.regions import BACKGROUND, CONTEXT, folder_name, mean_pixel, warp
from googlenet.errors import ModelSourceError
from googlenet.model.network import GoogLeNet
from googlenet.runtime.device import resolve_device
from googlenet.weights.sources import load_artifact

NMS_IOU = 0.3  # R-CNN's per-class NMS threshold
CHUNK = 256  # regions per forward pass


@dataclass(frozen=True)
class RCNNSettings:
    setting: str = DEFAULT_SETTING
    max_side: int = 500
    max_proposals: int = 2000  # R-CNN's ~2000 per image; Selective Search's order is kept
    score_threshold: float = 0.05
    nms_iou: float = NMS_IOU
    max_detections: int = 100
    context: float = CONTEXT


class RCNNDetector:
    """A region classifier (GoogLeNet whose classes include `__background__`) used as R-CNN's."""

    def __init__(self, model: GoogLeNet, model_classes: Sequence[str], classes: Sequence[str],
                 preprocessing, settings: RCNNSettings, device: torch.device,
                 cache: ProposalCache = ProposalCache(None)) -> None:
        self.model = model.to(device).eval()
        self.classes, self.settings, self.device, self.cache = tuple(classes), settings, device, cache
        self.preprocessing = preprocessing
        self.normalise = Normalize(preprocessing)
        folders = {folder_name(name): i for i, name in enumerate(classes)}
        if BACKGROUND not in model_classes:
            raise ModelSourceError(f"the region classifier's classes {list(model_classes)[:5]} have no "
                                   f"{BACKGROUND!r}: not an R-CNN region classifier")
        self.background = list(model_classes).index(BACKGROUND)
        # model output index -> data set class index (classes the regions never showed are absent)
        self.columns = [(i, folders[name]) for i, name in enumerate(model_classes) if name in folders]

    @classmethod
    def load(cls, checkpoint: str | Path, classes: Sequence[str], settings: RCNNSettings,
             device: str = "auto", cache: ProposalCache = ProposalCache(None)) -> RCNNDetector:
        artifact = load_artifact(checkpoint)
        model = model_from_artifact(artifact, aux_logits=False)
        return cls(model, artifact.classes, classes, artifact.preprocessing, settings,
                   resolve_device(device), cache)

    def proposals(self, image: Image.Image, raw: bytes | None) -> np.ndarray:
        s = self.settings
        if raw is not None:
            boxes = self.cache.get(raw, s.setting, s.max_side)
            if boxes is None:
                boxes = selective_search(np.asarray(image), s.setting, s.max_side)
                self.cache.put(raw, s.setting, s.max_side, boxes)
        else:
            boxes = selective_search(np.asarray(image), s.setting, s.max_side)
        return boxes[:s.max_proposals]

    @torch.no_grad()
    def class_scores(self, image: Image.Image, boxes: np.ndarray) -> torch.Tensor:
        """K x C softmax probabilities (model classes) of each warped region, as in validation:
        warped to the resize size, center crop, normalised."""
        pixels = pil_to_tensor(image).float().div_(255)
        prep = self.preprocessing
        out = []
        for start in range(0, len(boxes), CHUNK):
            chunk = torch.from_numpy(boxes[start:start + CHUNK])
            crops = warp(pixels, chunk, prep.resize_size, self.settings.context, mean_pixel(prep))
            crops = self.normalise(center_crop(crops, [prep.input_size, prep.input_size]))
            logits = self.model(crops.to(self.device, memory_format=torch.channels_last))
            out.append(logits.float().softmax(1).cpu())
        return torch.cat(out) if out else torch.zeros(0, len(self.columns) + 1)

    def detect(self, image: Image.Image, raw: bytes | None = None) -> Detections:
        """Detections in one RGB image (`raw`: its file's bytes, the proposal cache's key)."""
        s = self.settings
        boxes = self.proposals(image, raw)
        if len(boxes) == 0 or not self.columns:
            return Detections.empty()
        probs = self.class_scores(image, boxes)
        model_cols = torch.tensor([m for m, _ in self.columns])
        data_labels = torch.tensor([d for _, d in self.columns])
        scores = probs[:, model_cols]  # K x C' (background dropped)
        region, column = torch.nonzero(scores > s.score_threshold, as_tuple=True)
        if len(region) == 0:
            return Detections.empty()
        all_boxes = torch.from_numpy(boxes)[region]
        all_scores = scores[region, column]
        keep = batched_nms(all_boxes, all_scores, column, s.nms_iou)[:s.max_detections]
        return Detections(all_boxes[keep].numpy(), all_scores[keep].numpy(),
                          data_labels[column[keep]].numpy())


def settings_from(values: dict) -> RCNNSettings:
    known = {f.name for f in dataclasses.fields(RCNNSettings)}
    return RCNNSettings(**{k: v for k, v in values.items() if k in known})
