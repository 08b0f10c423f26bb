"""Sec. 6: "Polyak averaging [13] was used to create the final model used at inference time"."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from googlenet.errors import ConfigError
from googlenet.training.config import AVERAGINGS, OptimConfig


class ModelAverage:
    """An averaged copy of a model, used for evaluation and for best.pt.

    Every update moves the average towards the current weights by a weight w_t (t counts the
    updates from 1): average += w_t x (weights - average).

    - `polyak`: w_t = 1 / t, the uniform average of the iterates x_1..x_t (Polyak and
      Juditsky 1992, the paper's reference [13]).
    - `ema`: w_t = 1 - min(decay, (1 + t) / (10 + t)), an exponential moving average whose
      decay warms up (as TensorFlow's ExponentialMovingAverage with num_updates) so that
      short runs are not dominated by the random initial weights.

    Floating-point buffers (batch-norm statistics) are averaged like the weights, so that the
    averaged weights are evaluated with statistics that match them (as timm's ModelEma);
    integer buffers (batch counts) are copied.
    """

    def __init__(self, model: nn.Module, kind: str = "ema", decay: float = 0.0) -> None:
        if kind not in ("polyak", "ema"):
            raise ValueError(f"averaging must be polyak or ema, got {kind!r}")
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.kind, self.decay = kind, decay
        self.updates = 0
        self._pairs: tuple[list[torch.Tensor], list[torch.Tensor], list[tuple]] | None = None

    def weight(self) -> float:
        """w_t of the latest update (t = self.updates)."""
        if self.kind == "polyak":
            return 1.0 / self.updates
        return 1.0 - min(self.decay, (1 + self.updates) / (10 + self.updates))

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
        torch._foreach_lerp_(averaged, current, self.weight())
        for mine, theirs in copied:
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay,
                "kind": self.kind}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        kind = state.get("kind", "ema")  # checkpoints written before `kind` hold an EMA
        if kind != self.kind:
            raise ConfigError(f"the checkpoint holds a {kind} average; this run asks for "
                              f"averaging {self.kind}")
        self.module.load_state_dict(state["module"])  # in place: cached pairs stay valid
        self.updates = int(state["updates"])


def build_average(model: nn.Module, optim: OptimConfig) -> ModelAverage | None:
    """The run's averaged model: None for `averaging: none` and for an EMA of decay 0."""
    assert optim.averaging in AVERAGINGS
    if optim.averaging == "none" or (optim.averaging == "ema" and optim.ema_decay == 0):
        return None
    return ModelAverage(model, optim.averaging, optim.ema_decay)
