"""Fine-tuning: freeze the network through a Table 1 row, and give pretrained layers a lower
learning rate than the classifiers."""

from __future__ import annotations

from typing import Any

from torch import nn

from googlenet.errors import ConfigError
from googlenet.model.network import GoogLeNet

BACKBONE = "backbone"  # every row before the classifier
CLASSIFIER_PREFIXES = ("fc.", "aux1.fc2.", "aux2.fc2.")  # what reset_classifier replaces


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """Batch norm that keeps its running statistics in training mode: a frozen layer must
    not drift with the new data's statistics. Same state_dict as nn.BatchNorm2d, so that a
    model with frozen batch norms loads and exports as any other; a state dict of torchvision's
    FrozenBatchNorm2d (no num_batches_tracked: detection checkpoints before this one) loads too."""

    def train(self, mode: bool = True) -> FrozenBatchNorm2d:
        return super().train(False)


def row_layer_names(model: GoogLeNet) -> list[list[str]]:
    return [[layer.name for layer in planned.layers] for planned in model.plan]


def resolve_freeze_point(model: GoogLeNet, name: str) -> int:
    """The index of the last row to freeze: `backbone`, a module name (inception4e, conv3,
    maxpool2) or an Inception key (4e)."""
    rows = row_layer_names(model)
    if name == BACKBONE:
        return max(i for i, names in enumerate(rows) if set(names) & set(model.feature_names))
    for candidate in (name, f"inception{name}"):
        for index, names in enumerate(rows):
            if candidate in names:
                return index
    known = [n for names in rows for n in names if n in model.feature_names]
    raise ConfigError(f"freeze: {name!r} names no row; use {BACKBONE} or one of {', '.join(known)}")


def freeze_through(model: GoogLeNet, name: str) -> list[str]:
    """Stop gradients to every parameter of the rows up to and including `name`, and fix
    their batch-norm statistics. Returns the frozen module names."""
    last = resolve_freeze_point(model, name)
    frozen = [n for names in row_layer_names(model)[:last + 1] for n in names]
    for module_name in frozen:
        module = getattr(model, module_name)
        freeze_batch_norms(module)  # first: it makes new parameters
        for p in module.parameters():
            p.requires_grad_(False)
    return frozen


def freeze_batch_norms(module: nn.Module) -> nn.Module:
    """FrozenBatchNorm2d in place of every BatchNorm2d under `module`, its scale and shift
    frozen too (as torchvision's FrozenBatchNorm2d, which detection used before: one frozen
    batch norm for fine-tuning and detection). Returns `module`."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps, momentum=child.momentum)
            frozen.load_state_dict(child.state_dict())
            setattr(module, name, frozen.to(child.weight.device).requires_grad_(False))
        else:
            freeze_batch_norms(child)
    return module


def parameter_groups(model: nn.Module, lr: float, weight_decay: float,
                     pretrained_lr_scale: float = 1.0, bias_lr_scale: float = 1.0
                     ) -> list[dict[str, Any]]:
    """Optimizer groups: classifiers at `lr`, everything else at `lr * pretrained_lr_scale`;
    biases at `bias_lr_scale` times their group's rate (BVLC's lr_mult 2); no weight decay on
    biases and batch-norm parameters (BVLC's decay_mult 0, timm's default). Frozen parameters
    are left out. The classifier groups come first, and within them the weights, so that group
    0's rate is the base rate that is logged."""
    groups: dict[tuple[bool, bool, bool], list[nn.Parameter]] = {
        (head, decay, bias): [] for head in (True, False) for decay in (True, False)
        for bias in (False, True)}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups[(name.startswith(CLASSIFIER_PREFIXES), p.ndim > 1, name.endswith(".bias"))].append(p)
    return [{"params": params,
             "lr": lr * (1.0 if head else pretrained_lr_scale) * (bias_lr_scale if bias else 1.0),
             "weight_decay": weight_decay if decay else 0.0}
            for (head, decay, bias), params in groups.items() if params]
