"""Any model source -> one `Artifact`.

A source is a published name (`imagenet`, `bvlc`), a run directory (its best.pt, else
last.pt), a `googlenet train` checkpoint, a safetensors file, a torchvision-style .pth
state dict, a Caffe .caffemodel, an exported .onnx or a TorchScript file. The format is
detected from the file's first bytes, not trusted from its name.

    artifact = load_artifact("imagenet")                # torchvision's, downloaded once
    artifact = load_artifact("runs/x")                  # the run's best.pt: its EMA weights
    model = load_model("bvlc", num_classes=10)          # fine-tuning: new classifiers
    model = googlenet(weights="imagenet")                # the entry point: fresh or any source
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from googlenet.artifact import rundir, schema
from googlenet.artifact.build import build_model, has_aux_weights, model_from_artifact
from googlenet.artifact.files import (
    CHECKPOINT_FORMAT,
    artifact_from_checkpoint,
    is_torchscript,
    openvino_metadata,
    read_safetensors,
    torchscript_metadata,
)
from googlenet.artifact.record import Artifact, Provenance
from googlenet.data.preprocessing import PRESETS, Preprocessing, preset
from googlenet.errors import ModelSourceError, NotFound
from googlenet.model.network import GoogLeNet
from googlenet.runtime.files import file_sha256, safe_torch_load
from googlenet.weights.caffe import caffe_to_state_dict, read_caffemodel
from googlenet.weights.download import fetch
from googlenet.weights.published import PUBLISHED, Published, imagenet_classes, recognise

Preprocess = str | Preprocessing | None  # a preset name, a record, or nothing stated


def load_artifact(source: str | Path, *, preprocess: Preprocess = None,
                  cache_dir: Path | None = None) -> Artifact:
    """The artifact of `source`. `preprocess` is needed only for a bare state dict that is not
    a recognised published file (it carries no preprocessing of its own)."""
    name = str(source)
    if name in PUBLISHED:
        return load_published(PUBLISHED[name], cache_dir)
    return load_file(resolve_path(Path(source)), preprocess)


def load_model(source: str | Path, *, num_classes: int | None = None, aux_logits: bool | None = None,
               preprocess: Preprocess = None, dropout: float | None = None,
               aux_dropout: float | None = None) -> GoogLeNet:
    """A GoogLeNet with the weights of `source` and their record (`model.artifact`), in eval mode
    as torchvision's builders with weights give it (call `.train()` to fine-tune); another
    `num_classes` replaces the classifiers."""
    model = model_from_artifact(load_artifact(source, preprocess=preprocess), num_classes,
                                aux_logits, dropout, aux_dropout)
    return model.eval()


def googlenet(weights: str | Path | None = None, *, variant: str | None = None,
              num_classes: int | None = None, aux_logits: bool | None = None,
              dropout: float | None = None, aux_dropout: float | None = None,
              preprocess: Preprocess = None) -> GoogLeNet:
    """GoogLeNet, as torchvision's `googlenet(weights=...)` and timm's `create_model` give it.

    weights: None (fresh weights), a published name ("imagenet": torchvision's, variant bn;
      "bvlc": BVLC's Caffe replication, variant paper), a run directory or any model file
      `load_artifact` reads.
    variant: with weights, the weights' own (asking for another is an error); without, "paper"
      (arch.table.DEFAULT_VARIANT: the network as published) unless "bn" is asked for.
    num_classes: the weights' (or 1000); another number replaces the classifiers (fine-tuning).
    aux_logits: the auxiliary heads (default: fresh models have them; weighted models have
      them where the weights do).
    The model carries its record: `model.artifact`, `model.classes`, `model.transforms()`. With
    weights it is in eval mode (ready to predict), without in training mode (ready to train).
    """
    if weights is None:
        return build_model(variant, num_classes, aux_logits=True if aux_logits is None else aux_logits,
                           dropout=dropout, aux_dropout=aux_dropout,
                           preprocessing=resolve_preprocess(preprocess))
    artifact = load_artifact(weights, preprocess=preprocess)
    if variant is not None and variant != artifact.variant:
        raise ModelSourceError(f"{artifact.source} holds variant {artifact.variant!r} weights, not "
                               f"{variant!r}; leave variant out to take the weights' own")
    return model_from_artifact(artifact, num_classes, aux_logits, dropout, aux_dropout).eval()


def resolve_preprocess(preprocess: Preprocess) -> Preprocessing | None:
    return preset(preprocess) if isinstance(preprocess, str) else preprocess


def resolve_path(path: Path) -> Path:
    # An R-CNN detection run's best.pt / last.pt is its region classifier (classes: background
    # and the objects), a `googlenet train` checkpoint: it is used as the classifier it is. A
    # Faster R-CNN run's last.pt is of kind detector and refused when read (artifact.files).
    if path.is_dir():
        for name in rundir.CHECKPOINTS:
            if (path / name).is_file():
                return path / name
        raise ModelSourceError(f"{path} is a directory without {' or '.join(rundir.CHECKPOINTS)}: "
                               "not a run directory")
    if not path.exists():
        raise NotFound(f"{path} does not exist (published names: {', '.join(PUBLISHED)})")
    return path


def load_published(published: Published, cache_dir: Path | None = None) -> Artifact:
    path = fetch(published.file, cache_dir)
    artifact = load_file(path, published.preprocess)
    return replace(artifact, variant=published.variant, classes=imagenet_classes(),
                   preprocessing=preset(published.preprocess),
                   provenance=replace(artifact.provenance, source=published.name))


def detect_format(path: Path) -> str:
    """'safetensors', 'torch', 'torchscript', 'caffemodel', 'onnx' or 'openvino', from the first
    bytes (and, for the two protobuf formats and OpenVINO's XML, the suffix)."""
    with open(path, "rb") as f:
        head = f.read(9)
    size = path.stat().st_size
    if len(head) == 9 and head[8:9] == b"{" and 8 + struct.unpack("<Q", head[:8])[0] <= size:
        return "safetensors"
    if head.startswith(b"PK\x03\x04"):  # a zip: torch.save or torch.jit.save
        return "torchscript" if is_torchscript(path) else "torch"
    if head[:1] == b"\x80":  # a legacy pickle
        return "torch"
    if path.suffix.lower() in (".caffemodel", ".onnx"):
        return path.suffix.lower()[1:]
    if path.suffix.lower() == ".xml":
        return "openvino"
    raise ModelSourceError(f"{path} is not a model file we can read: expected a googlenet checkpoint, "
                           "a state dict (.pt/.pth), .safetensors, .caffemodel, .onnx, an OpenVINO "
                           ".xml or TorchScript")


def load_file(path: Path, preprocess: Preprocess = None) -> Artifact:
    kind = detect_format(path)
    sha256 = file_sha256(path)
    if kind == "safetensors":
        state, metadata = read_safetensors(path)
        artifact = schema.from_metadata(metadata, str(path))
        if artifact is None:
            return from_state_dict(state, str(path), sha256, preprocess)
        return with_weights(artifact, state, str(path), sha256)
    if kind == "caffemodel":
        return from_caffemodel(path, sha256)
    if kind in ("onnx", "torchscript", "openvino"):
        readers = {"onnx": onnx_metadata, "torchscript": torchscript_metadata,
                   "openvino": openvino_metadata}
        metadata = readers[kind](path)
        artifact = schema.from_metadata(metadata, str(path))
        if artifact is None:
            raise ModelSourceError(f"{path} has no googlenet metadata; export it with googlenet export")
        return replace(artifact, provenance=replace(artifact.provenance, source=str(path), sha256=sha256))
    state = safe_torch_load(path, "model file (it may be a pickle that runs code, which we never load)")
    if isinstance(state, Mapping) and state.get("format") == CHECKPOINT_FORMAT:
        return artifact_from_checkpoint(state, str(path), sha256)
    if isinstance(state, Mapping):
        for key in ("state_dict", "model"):  # common wrappers
            if isinstance(state.get(key), Mapping):
                state = state[key]
    return from_state_dict(state, str(path), sha256, preprocess)


def with_weights(artifact: Artifact, state: dict[str, Any], source: str, sha256: str) -> Artifact:
    return replace(artifact, state_dict=state, aux_logits=has_aux_weights(state),
                   provenance=replace(artifact.provenance, source=source, sha256=sha256))


def from_caffemodel(path: Path, sha256: str) -> Artifact:
    state = caffe_to_state_dict(read_caffemodel(path))
    return Artifact("paper", imagenet_classes(), preset("caffe"), aux_logits=True,
                    provenance=Provenance(source=str(path), sha256=sha256), state_dict=state)


def state_dict_variant(state: Mapping[str, Any], source: str) -> str:
    if "conv1.bn.weight" in state:
        return "bn"
    if "conv1.conv.bias" in state:
        return "paper"
    raise ModelSourceError(f"{source} does not look like a GoogLeNet state dict (no conv1.bn.weight "
                           "or conv1.conv.bias)")


def from_state_dict(state: Any, source: str, sha256: str, preprocess: Preprocess) -> Artifact:
    """A plain state dict in torchvision's naming (ours), with no metadata of its own.

    torchvision's published ImageNet file is recognised by its hash; any other file needs
    its preprocessing stated: a wrong guess would preprocess silently wrong.
    """
    from torch import Tensor

    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelSourceError(f"{source} holds no state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DDP
    variant = state_dict_variant(state, source)
    if "fc.weight" not in state:
        raise ModelSourceError(f"{source} has no classifier (fc.weight)")
    num_classes = state["fc.weight"].shape[0]
    published = recognise(sha256)
    if published is not None and preprocess is None:
        preprocess = published.preprocess
    if preprocess is None:
        stated = "preprocess=" + " | ".join(f'"{name}"' for name in PRESETS)
        raise ModelSourceError(
            f"{source} is a bare state dict: it does not say how its input was preprocessed. "
            f"State it with {stated} (imagenet: torchvision's ImageNet mean and std; "
            "inception: (x - 0.5) / 0.5, torchvision's transform_input; caffe: BVLC's 0-255 mean "
            "subtraction), or a Preprocessing record", setting=stated)
    preprocessing = resolve_preprocess(preprocess)
    classes = imagenet_classes() if num_classes == 1000 else tuple(str(i) for i in range(num_classes))
    return Artifact(variant, classes, preprocessing, aux_logits=has_aux_weights(state),
                    provenance=Provenance(source=published.name if published else source,
                                          sha256=sha256), state_dict=state)


def onnx_metadata(path: Path) -> dict[str, str]:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises protobuf's DecodeError and others
        raise ModelSourceError(f"{path} is not a readable ONNX model: {error}") from None
    return {p.key: p.value for p in proto.metadata_props}

