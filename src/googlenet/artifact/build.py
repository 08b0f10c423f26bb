"""A model holding an artifact's weights, with new classifiers when the class count differs."""

from __future__ import annotations

from googlenet.artifact.record import Artifact
from googlenet.errors import ModelSourceError
from googlenet.model.network import GoogLeNet, build_model, check_num_classes

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
    model = build_model(artifact.variant, num_classes=artifact.num_classes, aux_logits=aux_logits,
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
    if num_classes is not None and num_classes != artifact.num_classes:
        check_num_classes(num_classes)
        model.reset_classifier(num_classes)
    return model


def has_aux_weights(state_dict: dict) -> bool:
    return any(key.startswith(AUX_PREFIXES) for key in state_dict)
