"""Models with their record: a fresh one (`build_model`), one holding an artifact's weights
(`model_from_artifact`, new classifiers when the class count differs), and a model's record
with its current weights (`artifact_of`), which export, Predictor and fine-tuning read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from googlenet.arch.table import DEFAULT_VARIANT, PAPER_NUM_CLASSES
from googlenet.artifact.record import Artifact, Provenance
from googlenet.data.preprocessing import Preprocessing
from googlenet.errors import ModelSourceError
from googlenet.model.network import GoogLeNet, build_network, check_num_classes

AUX_PREFIXES = ("aux1.", "aux2.")


def model_from_artifact(artifact: Artifact, num_classes: int | None = None,
                        aux_logits: bool | None = None, dropout: float | None = None,
                        aux_dropout: float | None = None) -> GoogLeNet:
    """The artifact's variant with its weights loaded.

    `num_classes` other than the artifact's: the main and auxiliary classifiers are replaced
    by freshly initialised ones (fine-tuning). `aux_logits` (default: whether the weights
    have them): auxiliary heads that the weights lack keep their initialisation; heads that
    the weights have but `aux_logits=False` drops are ignored.
    """
    if artifact.state_dict is None:
        raise ModelSourceError(f"{artifact.source} holds an exported graph, not weights: run it "
                               "through an inference backend (googlenet.inference.Predictor)")
    aux_logits = artifact.aux_logits if aux_logits is None else aux_logits
    model = build_network(artifact.variant, num_classes=artifact.num_classes, aux_logits=aux_logits,
                          dropout=dropout, aux_dropout=aux_dropout, width=artifact.width)
    state = {k: v for k, v in artifact.state_dict.items()
             if aux_logits or not k.startswith(AUX_PREFIXES)}
    own = model.state_dict()
    missing = [k for k in own if k not in state and not (k.startswith(AUX_PREFIXES) and
                                                           not artifact.aux_logits)]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ModelSourceError(f"{artifact.source} does not fit variant {artifact.variant!r}: "
                               f"missing {missing[:5]}, unexpected {unexpected[:5]}, shapes {wrong[:5]}")
    model.load_state_dict(state, strict=False)
    record = artifact.without_weights()
    if num_classes is not None and num_classes != artifact.num_classes:
        check_num_classes(num_classes)
        model.reset_classifier(num_classes)
        # new classifiers: the classes are unnamed until a training run names them
        record = replace(record, classes=numbered(num_classes))
    model.artifact = replace(record, aux_logits=model.aux_logits)
    return model


def numbered(num_classes: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(num_classes))


def build_model(variant: str | None = None, num_classes: int | None = None, *,
                classes: Sequence[str] | None = None, preprocessing: Preprocessing | None = None,
                aux_logits: bool = True, dropout: float | None = None,
                aux_dropout: float | None = None, width: float = 1.0) -> GoogLeNet:
    """GoogLeNet with fresh weights and its record (for published or trained weights:
    `googlenet.googlenet(weights=...)` or `load_model`).

    variant: "paper" (the default: the network as published, with LRN and 5x5 branches) or
      "bn" (batch norm, torchvision's; the variant of torchvision's ImageNet weights).
    num_classes: 1000 by default, or len(classes); classes: their names ("0", "1", ... if not
      given). preprocessing: the input the model is meant for (torchvision's ImageNet
      normalisation at 224 by default, which the training recipes use).
    aux_logits: include the two auxiliary classifiers (used by forward_train only).
    dropout, aux_dropout: override the variant's dropout ratios (0.4 / 0.7 in the paper).
    width: every filter count of Table 1 times this (Sec. 7's "wider version"; 1: as printed).
    """
    if classes is not None and num_classes is not None and num_classes != len(classes):
        raise ValueError(f"num_classes {num_classes} but {len(classes)} class names")
    if num_classes is None:
        num_classes = len(classes) if classes is not None else PAPER_NUM_CLASSES
    variant = variant or DEFAULT_VARIANT
    model = build_network(variant, num_classes, aux_logits, dropout, aux_dropout, width)
    model.artifact = Artifact(variant, tuple(classes) if classes is not None else numbered(num_classes),
                              preprocessing or Preprocessing(), aux_logits=aux_logits, width=width,
                              provenance=Provenance(source="<new>"))
    return model


def artifact_of(model: GoogLeNet, source: str = "<in memory>") -> Artifact:
    """`model`'s record with its current weights (what export and fine-tuning read).

    A model built outside the library (`build_network`) has no record: its classes are
    numbered and its preprocessing is torchvision's ImageNet normalisation."""
    record = model.artifact or Artifact(model.variant.name, numbered(model.num_classes),
                                        Preprocessing(), width=model.variant.width)
    if record.num_classes != model.num_classes:  # reset_classifier since the record was made
        record = replace(record, classes=numbered(model.num_classes))
    state = {k: v.detach() for k, v in model.state_dict().items()}
    return replace(record, variant=model.variant.name, width=model.variant.width,
                   aux_logits=has_aux_weights(state), state_dict=state,
                   provenance=replace(record.provenance, source=record.source or source))


def has_aux_weights(state_dict: dict) -> bool:
    return any(key.startswith(AUX_PREFIXES) for key in state_dict)
