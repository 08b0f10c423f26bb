"""Artifacts in files: our safetensors files, training checkpoints, TorchScript extra files.

ONNX files carry the same metadata in `metadata_props` (written by deploy.export, read by
weights.sources); every format goes through `artifact.schema`.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from googlenet.artifact import schema
from googlenet.artifact.build import has_aux_weights
from googlenet.artifact.record import Artifact, Provenance
from googlenet.data.preprocessing import Preprocessing
from googlenet.errors import ModelSourceError
from googlenet.runtime.files import atomic_path

CHECKPOINT_FORMAT = "googlenet-checkpoint"
CHECKPOINT_VERSION = 2  # 2: the artifact record under "artifact"; 1: preprocessing in the config
# What a checkpoint holds, under its "kind": a GoogLeNet classifier (`googlenet train`; files
# without a kind are classifiers, as before kinds were written) or a detection model of
# `googlenet detect train` (its weights under "detector", its detection.json under "record").
CLASSIFIER, DETECTOR = "classifier", "detector"
CHECKPOINT_KINDS = (CLASSIFIER, DETECTOR)


def save_safetensors(artifact: Artifact, path: str | Path) -> Path:
    """Tensors plus the artifact's metadata in the header, written atomically, mode 0644."""
    from safetensors.torch import save_file

    if artifact.state_dict is None:
        raise ModelSourceError(f"{artifact.source} has no weights to write as safetensors")
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in artifact.state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=schema.to_metadata(artifact))
    return path


def read_safetensors(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """(tensors, header metadata)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            return {key: f.get_tensor(key) for key in f.keys()}, metadata
    except Exception as error:  # safetensors raises its own types for corrupt files
        raise ModelSourceError(f"{path} is not a readable safetensors file: {error}") from None


def checkpoint_weights(state: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The weights a checkpoint is used with, and whether they are averaged (Sec. 6): a
    resumable checkpoint's averaged model when it has one, else its model; a run's best.pt
    holds only the weights it is used with, under "model", with "averaged"."""
    if state.get("ema"):
        return dict(state["ema"]["module"]), True
    return dict(state["model"]), bool(state.get("averaged", False))


def checkpoint_kind(state: Mapping[str, Any]) -> str:
    """CLASSIFIER or DETECTOR; detection checkpoints written before kinds had a "detector" key."""
    return state.get("kind") or (DETECTOR if "detector" in state else CLASSIFIER)


def detector_description(state: Mapping[str, Any]) -> str:
    """'faster-rcnn on GoogLeNet' or 'fasterrcnn-mobilenet': what a detector checkpoint holds."""
    record = state.get("record") if isinstance(state.get("record"), Mapping) else {}
    method = record.get("method", "a detector")
    return f"{method} on GoogLeNet" if record.get("variant") else str(method)


def check_kind(state: Mapping[str, Any], where: str, kind: str) -> None:
    """A ModelSourceError naming what the checkpoint is and which command takes it, unless it
    is of `kind`."""
    found = checkpoint_kind(state)
    if found == kind:
        return
    if found == DETECTOR:
        raise ModelSourceError(f"{where} is a detection run ({detector_description(state)}): use "
                               "googlenet detect predict / detect evaluate, or detect train --resume")
    if found == CLASSIFIER:
        raise ModelSourceError(f"{where} is a googlenet train checkpoint (a classifier), not a detection "
                               "run: use it with googlenet predict / evaluate, or as detect train --model")
    raise ModelSourceError(f"{where}: unknown checkpoint kind {found!r} (known: "
                           f"{', '.join(CHECKPOINT_KINDS)}); a newer googlenet may read it")


def artifact_from_checkpoint(state: Mapping[str, Any], where: str, sha256: str | None = None
                             ) -> Artifact:
    """The model a `googlenet train` checkpoint holds, with its metadata; a detection
    checkpoint is refused with a message that names the commands that take it."""
    check_kind(state, where, CLASSIFIER)
    version = state.get("version")
    weights, averaged = checkpoint_weights(state)
    if version == 1:
        artifact = legacy_checkpoint_artifact(state, where)
    elif isinstance(version, int) and version <= CHECKPOINT_VERSION:
        artifact = schema.from_dict(state["artifact"], where)
    else:
        raise ModelSourceError(f"{where}: checkpoint version {version!r} is newer than this "
                               "googlenet reads; upgrade googlenet to load it")
    provenance = replace(artifact.provenance, source=where, sha256=sha256, averaged=averaged)
    return replace(artifact, provenance=provenance, aux_logits=has_aux_weights(weights),
                   state_dict=weights)


def legacy_checkpoint_artifact(state: Mapping[str, Any], where: str) -> Artifact:
    """Checkpoints of googlenet 0.1 kept their preprocessing in the training config."""
    config, data = state["config"], state["config"]["data"]
    preprocessing = Preprocessing(input_size=int(data["input_size"]),
                                  crop_ratio=float(data["eval_crop_ratio"]),
                                  mean=tuple(data["mean"]), std=tuple(data["std"]))
    return Artifact(config["model"]["variant"], tuple(state["classes"]), preprocessing,
                    provenance=Provenance(source=where, config=config,
                                          metrics=state.get("metrics")))


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive (torch.jit.save) rather than a torch.save file: it holds code/."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name or name.endswith("/constants.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def torchscript_metadata(path: Path) -> dict[str, str]:
    """The artifact's extra file, read from the archive without loading (or running) the module."""
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(f"/extra/{schema.METADATA_KEY}"):
                return {schema.METADATA_KEY: archive.read(name).decode()}
    return {}



OPENVINO_RT_SECTION = "googlenet"  # the artifact's metadata under the IR's <rt_info><googlenet>


def openvino_metadata(path: Path) -> dict[str, str]:
    """The artifact's metadata from an OpenVINO IR's rt_info, read from the .xml with the
    standard library (no OpenVINO needed to see what a file holds)."""
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise ModelSourceError(f"{path} is not a readable OpenVINO IR (.xml): {error}") from None
    if root.tag != "net":
        raise ModelSourceError(f"{path} is XML but not an OpenVINO IR (its root is <{root.tag}>)")
    section = root.find(f"rt_info/{OPENVINO_RT_SECTION}")
    if section is None:
        return {}
    return {item.tag: item.get("value", "") for item in section}
