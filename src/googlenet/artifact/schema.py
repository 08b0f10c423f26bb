"""The artifact metadata schema: the one module that writes and reads it.

Stored the same way in every format: a JSON object under the key
`googlenet.artifact` in string maps (safetensors header metadata, ONNX
`metadata_props`, a TorchScript extra file of that name), and the same object
under the key `artifact` of a training checkpoint.

    {"schema": "googlenet-artifact", "version": 1, "variant": "bn", "classes": [...],
     "aux_logits": false, "preprocessing": {...}, "provenance": {...}}

A training checkpoint also says what kind of model it holds, under its `kind` key
(`artifact.files.CHECKPOINT_KINDS`): `classifier` (a `googlenet train` checkpoint, with the
record above; a checkpoint without a kind is one) or `detector` (a `googlenet detect train`
checkpoint of a Faster R-CNN: its weights under `detector`, its run's detection.json under
`record`, and no artifact record, since it is no classifier). A model source that is a
detector is refused by every command that needs a classifier, naming the commands that take it.

A newer version than this code knows is an error, never a guess.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from googlenet.artifact.record import Artifact, Provenance
from googlenet.data.preprocessing import Preprocessing
from googlenet.errors import ConfigError, SchemaError

SCHEMA = "googlenet-artifact"
VERSION = 1
METADATA_KEY = "googlenet.artifact"  # the key in string maps, and the TorchScript extra file
PROVENANCE_FIELDS = ("source", "sha256", "averaged", "config", "metrics")


def to_dict(artifact: Artifact) -> dict[str, Any]:
    p = artifact.provenance
    return {
        "schema": SCHEMA, "version": VERSION, "variant": artifact.variant,
        "classes": list(artifact.classes), "aux_logits": artifact.aux_logits,
        "width": artifact.width,
        "preprocessing": artifact.preprocessing.to_dict(),
        "provenance": {name: getattr(p, name) for name in PROVENANCE_FIELDS},
    }


def from_dict(values: Mapping[str, Any], where: str) -> Artifact:
    """The artifact described by `values` (without weights); `where` names the file in errors."""
    if not isinstance(values, Mapping) or values.get("schema") != SCHEMA:
        raise SchemaError(f"{where}: model metadata is not a {SCHEMA!r} record")
    version = values.get("version")
    if not isinstance(version, int) or version < 1:
        raise SchemaError(f"{where}: model metadata has no valid schema version ({version!r})")
    if version > VERSION:
        raise SchemaError(f"{where}: model metadata has schema version {version}, newer than the "
                          f"{VERSION} this googlenet reads; upgrade googlenet to load it")
    try:
        provenance = values.get("provenance") or {}
        return Artifact(
            variant=values["variant"], classes=tuple(values["classes"]),
            preprocessing=Preprocessing.from_dict(values["preprocessing"]),
            aux_logits=bool(values.get("aux_logits", False)),
            width=float(values.get("width", 1.0)),  # absent before wider models: as printed
            provenance=Provenance(**{k: provenance[k] for k in PROVENANCE_FIELDS if k in provenance}))
    except (KeyError, TypeError, ConfigError) as error:
        raise SchemaError(f"{where}: malformed model metadata ({error})") from None


def to_metadata(artifact: Artifact) -> dict[str, str]:
    """String key/values for formats whose metadata is a string map."""
    return {METADATA_KEY: json.dumps(to_dict(artifact))}


def from_metadata(metadata: Mapping[str, str], where: str) -> Artifact | None:
    """The artifact stored in a string map, or None when the map holds none."""
    text = metadata.get(METADATA_KEY)
    if text is None:
        return None
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise SchemaError(f"{where}: model metadata is not valid JSON ({error})") from None
    return from_dict(values, where)
