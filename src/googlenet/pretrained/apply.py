"""Build a model holding given weights, with new classifiers when the class count differs."""

from __future__ import annotations

import dataclasses

from ..arch import get_variant
from ..model import GoogLeNet, check_num_classes
from .sources import Weights

AUX_PREFIXES = ("aux1.", "aux2.")


def model_from_weights(weights: Weights, num_classes: int | None = None, aux_logits: bool = True,
                       dropout: float | None = None, aux_dropout: float | None = None) -> GoogLeNet:
    """The weights' variant with the weights loaded.

    `num_classes` other than the weights' own: the main and auxiliary classifiers are
    replaced by freshly initialised ones (fine-tuning). Auxiliary heads that the weights
    lack keep their initialisation; heads that the weights have but `aux_logits=False`
    drops are ignored.
    """
    spec = get_variant(weights.variant)
    for name, value in (("dropout", dropout), ("aux_dropout", aux_dropout)):
        if value is not None:
            spec = dataclasses.replace(spec, **{name: value})
    model = GoogLeNet(spec, num_classes=weights.num_classes, aux_logits=aux_logits)
    state = {k: v for k, v in weights.state_dict.items()
             if aux_logits or not k.startswith(AUX_PREFIXES)}
    own = model.state_dict()
    missing = [k for k in own if k not in state and not (k.startswith(AUX_PREFIXES) and
                                                           not weights.has_aux)]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(f"{weights.source} does not fit variant {weights.variant!r}: "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}, shapes {wrong[:5]}")
    model.load_state_dict(state, strict=False)
    if num_classes is not None and num_classes != weights.num_classes:
        check_num_classes(num_classes)
        model.reset_classifier(num_classes)
    return model
