"""Polyak averaging (Sec. 6) as an exponential moving average of the weights."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ModelEma:
    """An averaged copy of a model, used for evaluation and for best.pt.

    The decay warms up as min(decay, (1 + t) / (10 + t)) so that short runs
    are not dominated by the random initial weights. Floating-point buffers
    (batch-norm statistics) are averaged like the weights, so that the averaged
    weights are evaluated with statistics that match them (as timm's ModelEma);
    integer buffers (batch counts) are copied.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0
        self._pairs: tuple[list[torch.Tensor], list[torch.Tensor], list[tuple]] | None = None

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    def pairs(self, model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor], list[tuple]]:
        """Matching tensors of both models, gathered once: they are updated in place."""
        if self._pairs is None:
            averaged, current, copied = [], [], []
            for mine, theirs in zip(self.module.state_dict().values(), model.state_dict().values()):
                if mine.dtype.is_floating_point:
                    averaged.append(mine)
                    current.append(theirs)
                else:
                    copied.append((mine, theirs))
            self._pairs = (averaged, current, copied)
        return self._pairs

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        averaged, current, copied = self.pairs(model)
        torch._foreach_lerp_(averaged, current, 1.0 - self.current_decay())
        for mine, theirs in copied:
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])  # in place: cached pairs stay valid
        self.updates = int(state["updates"])
