"""Where weights come from: a published name (`imagenet`, `bvlc`) or a local file of any
supported format, turned into one `Weights` record: a state dict in our naming, the variant,
the class names and the preprocessing the weights expect.

    weights = load_weights("imagenet")            # torchvision's, downloaded once, hash checked
    weights = load_weights("bvlc_googlenet.caffemodel")
    weights = load_weights("runs/x/best.pt")      # a `googlenet train` checkpoint: its EMA weights
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from ..arch import VARIANTS
from ..atomic import atomic_path
from ..checkpoint import FORMAT as CHECKPOINT_FORMAT
from ..checkpoint import safe_torch_load
from ..weights import (
    IMAGENET_NORMALIZATION,
    TORCHVISION_GOOGLENET_NORMALIZATION,
    Normalization,
)
from .caffe import BVLC_CAFFE_PREPROCESSING, BVLC_NORMALIZATION, caffe_to_state_dict, read_caffemodel
from .download import PublishedFile, fetch

SAFETENSORS_FORMAT = "googlenet-weights"
IMAGENET_CROP_RATIO = 224 / 256  # resize to 256, center crop 224: torchvision's and Caffe's


@dataclass(frozen=True)
class Weights:
    state_dict: dict[str, Tensor]  # our (torchvision's) parameter names
    variant: str
    classes: list[str]
    normalization: Normalization  # for RGB input scaled to [0, 1]
    source: str
    input_size: int = 224
    eval_crop_ratio: float = IMAGENET_CROP_RATIO
    averaged: bool = False  # Polyak-averaged (EMA) weights of a training checkpoint
    config: dict[str, Any] | None = None  # a training checkpoint's configuration
    preprocessing: dict[str, Any] = field(default_factory=dict)  # the original's, for the record

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def has_aux(self) -> bool:
        return any(key.startswith("aux1.") for key in self.state_dict)


def imagenet_classes() -> list[str]:
    """ImageNet-1k's class names in the standard (sorted WordNet id) order, from torchvision."""
    from torchvision.models import GoogLeNet_Weights

    return list(GoogLeNet_Weights.IMAGENET1K_V1.meta["categories"])


@dataclass(frozen=True)
class Published:
    """Weights published by others, with what they need."""

    name: str
    variant: str
    file: PublishedFile
    normalization: Normalization
    description: str


def published_weights() -> dict[str, Published]:
    return {
        "imagenet": Published(
            "imagenet", "bn",
            PublishedFile("https://download.pytorch.org/models/googlenet-1378be20.pth",
                          "googlenet-1378be20.pth", "sha256", "1378be20"),
            TORCHVISION_GOOGLENET_NORMALIZATION,
            "torchvision's GoogLeNet_Weights.IMAGENET1K_V1 (69.78% top-1, 89.53% top-5)"),
        "bvlc": Published(
            "bvlc", "paper",
            PublishedFile("http://dl.caffe.berkeleyvision.org/bvlc_googlenet.caffemodel",
                          "bvlc_googlenet.caffemodel", "sha1",
                          "405fc5acd08a3bb12de8ee5e23a96bec22f08204"),
            BVLC_NORMALIZATION,
            "BVLC's Caffe replication of the paper (68.7% top-1, 88.9% top-5, one center crop)"),
    }


def load_weights(source: str | Path, variant: str | None = None,
                 cache_dir: Path | None = None) -> Weights:
    """`imagenet`, `bvlc` or a file: a `googlenet train` checkpoint, a torchvision-style state
    dict (.pth), a safetensors file or a Caffe .caffemodel (the format is detected)."""
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    published = published_weights()
    if str(source) in published:
        weights = load_published(published[str(source)], cache_dir)
    else:
        weights = load_file(Path(source))
    if variant is not None and variant != weights.variant:
        raise ValueError(f"{source} holds weights of variant {weights.variant!r}, not {variant!r}")
    return weights


def load_published(published: Published, cache_dir: Path | None = None) -> Weights:
    path = fetch(published.file, cache_dir)
    weights = load_file(path)
    preprocessing = weights.preprocessing
    return Weights(weights.state_dict, published.variant, imagenet_classes(),
                   published.normalization, published.name, preprocessing=preprocessing)


def detect_format(path: Path) -> str:
    """'safetensors', 'torch' or 'caffemodel', from the file's first bytes (and suffix)."""
    with open(path, "rb") as f:
        head = f.read(9)
    size = path.stat().st_size
    if len(head) == 9 and head[8:9] == b"{" and 8 + struct.unpack("<Q", head[:8])[0] <= size:
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch zip, or a legacy pickle
        return "torch"
    if path.suffix.lower() == ".caffemodel":
        return "caffemodel"
    raise ValueError(f"{path} is not a weights file we can read: expected a googlenet checkpoint "
                     "or a torchvision state dict (.pt/.pth), a .safetensors file or a Caffe "
                     ".caffemodel")


def load_file(path: Path) -> Weights:
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist (published names: "
                                f"{', '.join(published_weights())})")
    kind = detect_format(path)
    if kind == "safetensors":
        return load_safetensors(path)
    if kind == "caffemodel":
        return load_caffemodel(path)
    return load_torch_file(path)


def load_caffemodel(path: Path) -> Weights:
    state_dict = caffe_to_state_dict(read_caffemodel(path))
    return Weights(state_dict, "paper", imagenet_classes(), BVLC_NORMALIZATION, str(path),
                   preprocessing=dict(BVLC_CAFFE_PREPROCESSING))


def load_torch_file(path: Path) -> Weights:
    state = safe_torch_load(path)
    if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
        return from_checkpoint(state, str(path))
    if isinstance(state, dict):
        for key in ("state_dict", "model"):  # common wrappers
            if isinstance(state.get(key), Mapping):
                state = state[key]
    return from_state_dict(state, str(path))


def from_checkpoint(state: dict[str, Any], source: str) -> Weights:
    config = state["config"]
    data = config["data"]
    averaged = bool(state.get("ema"))
    return Weights(dict(state["ema"]["module"] if averaged else state["model"]),
                   config["model"]["variant"], list(state["classes"]),
                   Normalization(tuple(data["mean"]), tuple(data["std"])), source,
                   input_size=int(data["input_size"]), eval_crop_ratio=float(data["eval_crop_ratio"]),
                   averaged=averaged, config=config)


def from_state_dict(state: Any, source: str) -> Weights:
    """A plain state dict in torchvision's naming (ours), as torchvision's own .pth files are."""
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{source} holds no state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DDP
    if "conv1.bn.weight" in state:
        variant = "bn"
    elif "conv1.conv.bias" in state:
        variant = "paper"
    else:
        raise ValueError(f"{source} does not look like a GoogLeNet state dict (no conv1.bn.weight "
                         "or conv1.conv.bias)")
    if "fc.weight" not in state:
        raise ValueError(f"{source} has no classifier (fc.weight)")
    num_classes = state["fc.weight"].shape[0]
    classes = imagenet_classes() if num_classes == 1000 else [str(i) for i in range(num_classes)]
    # torchvision's googlenet runs with transform_input=True, i.e. (x - 0.5) / 0.5 (weights.py).
    normalization = TORCHVISION_GOOGLENET_NORMALIZATION if variant == "bn" else IMAGENET_NORMALIZATION
    return Weights(state, variant, classes, normalization, source)


def load_safetensors(path: Path) -> Weights:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as error:
        raise ValueError(f"{path} is not a readable safetensors file: {error}") from None
    if metadata.get("format") != SAFETENSORS_FORMAT:
        return from_state_dict(state, str(path))
    return Weights(state, metadata["variant"], json.loads(metadata["classes"]),
                   Normalization(tuple(json.loads(metadata["mean"])), tuple(json.loads(metadata["std"]))),
                   str(path), input_size=int(metadata["input_size"]),
                   eval_crop_ratio=float(metadata["eval_crop_ratio"]),
                   averaged=metadata.get("averaged") == "true",
                   preprocessing=json.loads(metadata.get("preprocessing", "{}")))


def save_safetensors(weights: Weights, path: Path) -> None:
    """Our weights format: tensors plus metadata (variant, classes, preprocessing), written
    atomically."""
    from safetensors.torch import save_file

    metadata = {
        "format": SAFETENSORS_FORMAT, "variant": weights.variant,
        "classes": json.dumps(weights.classes), "mean": json.dumps(list(weights.normalization.mean)),
        "std": json.dumps(list(weights.normalization.std)), "input_size": str(weights.input_size),
        "eval_crop_ratio": repr(weights.eval_crop_ratio), "source": str(weights.source),
        "averaged": "true" if weights.averaged else "false",
        "preprocessing": json.dumps(weights.preprocessing),
    }
    tensors = {k: v.detach().contiguous().clone() for k, v in weights.state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
