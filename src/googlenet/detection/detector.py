"""A detection run directory and the detector it holds.

Every detection run writes `detection.json` (method, classes, what rebuilds the model) beside
its checkpoints; `load_detector(run_dir)` gives an object with `detect(image) -> Detections`
whichever the method:

- `rcnn`: the paper's (Sec. 8): a `googlenet train` run of the region classifier (best.pt,
  else last.pt) and the proposal settings;
- `faster-rcnn`: torchvision's Faster R-CNN on a GoogLeNet trunk with a feature pyramid;
- `fasterrcnn-mobilenet`: torchvision's fasterrcnn_mobilenet_v3_large_320_fpn, the peer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from googlenet.artifact import rundir
from googlenet.artifact.files import DETECTOR
from googlenet.data.preprocessing import Preprocessing
from googlenet.detection.metrics import Detections
from googlenet.detection.proposals import ProposalCache
from googlenet.errors import ModelSourceError, SchemaError
from googlenet.model.network import build_network
from googlenet.runtime.device import resolve_device
from googlenet.training.checkpoint import load_checkpoint
from googlenet.weights.sources import resolve_path

FORMAT, VERSION = "googlenet.detection", 1
METHODS = ("rcnn", "faster-rcnn", "fasterrcnn-mobilenet")


class Detector(Protocol):
    classes: tuple[str, ...]

    def detect(self, image: Image.Image, raw: bytes | None = None) -> Detections: ...


def read_record(run_dir: str | Path) -> dict[str, Any]:
    """The run's detection.json; `run_dir` may also name a checkpoint inside the run."""
    run_dir = Path(run_dir)
    if run_dir.is_file() and (run_dir.parent / rundir.DETECTION_RECORD).is_file():
        run_dir = run_dir.parent
    if not run_dir.exists():
        raise ModelSourceError(f"{run_dir} does not exist: expected a detection run directory")
    path = run_dir / rundir.DETECTION_RECORD
    if not path.is_file():
        raise ModelSourceError(f"{run_dir} is not a detection run (no {rundir.DETECTION_RECORD}); "
                               "train one with googlenet detect train")
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SchemaError(f"{path} is not readable ({error})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise SchemaError(f"{path} is not a googlenet detection record")
    if record.get("version", 0) > VERSION:
        raise SchemaError(f"{path} was written by a newer googlenet (version {record['version']})")
    if record.get("method") not in METHODS:
        raise SchemaError(f"{path}: unknown method {record.get('method')!r}")
    return record


class TorchvisionDetector:
    """A torchvision detection model (Faster R-CNN) behind the common `detect`."""

    def __init__(self, model: torch.nn.Module, classes: tuple[str, ...], device: torch.device) -> None:
        self.model, self.classes, self.device = model.to(device).eval(), classes, device

    @torch.no_grad()
    def detect(self, image: Image.Image, raw: bytes | None = None) -> Detections:
        output = self.model([pil_to_tensor(image).float().div_(255).to(self.device)])[0]
        return Detections(output["boxes"].cpu().numpy(), output["scores"].cpu().numpy(),
                          output["labels"].cpu().numpy() - 1)


def build_torchvision_model(record: dict[str, Any]) -> torch.nn.Module:
    """The detection model a record describes, with fresh weights (a checkpoint fills them)."""
    from googlenet.detection.frcnn import faster_rcnn, mobilenet_peer

    classes, size = record["classes"], record["image_size"]
    if record["method"] == "fasterrcnn-mobilenet":
        return mobilenet_peer(len(classes), size)
    trunk = build_network(record["variant"], num_classes=1, aux_logits=False)
    model = faster_rcnn(trunk, Preprocessing.from_dict(record["preprocessing"]), len(classes), size)
    if record.get("frozen_batch_norm"):
        from googlenet.training.finetune import freeze_batch_norms

        freeze_batch_norms(model.backbone.body)
    return model


def load_detector(run_dir: str | Path, device: str = "auto", cache: ProposalCache = ProposalCache(None),
                  **settings: Any) -> Detector:
    """The detector of a run directory; `settings` override R-CNN's (e.g. max_proposals)."""
    record = read_record(run_dir)
    run_dir = Path(run_dir) if Path(run_dir).is_dir() else Path(run_dir).parent
    classes = tuple(record["classes"])
    if record["method"] == "rcnn":
        from googlenet.detection.rcnn import RCNNDetector, settings_from

        options = settings_from({**record["rcnn"], **settings})
        return RCNNDetector.load(resolve_path(Path(run_dir)), classes, options, device, cache)
    model = build_torchvision_model(record)
    state = load_checkpoint(rundir.last_checkpoint(run_dir), DETECTOR)
    model.load_state_dict(state[DETECTOR])
    return TorchvisionDetector(model, classes, resolve_device(device))
