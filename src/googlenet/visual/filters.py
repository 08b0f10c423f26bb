"""What the layers hold: the first layer's 7x7 filters, and the feature maps of each branch of an
Inception module (Figure 2b's 1x1, 3x3, 5x5 and pool projection) for one image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from googlenet.data.preprocessing import Preprocessing
from googlenet.model.network import GoogLeNet
from googlenet.visual.explain import model_view

BRANCHES = ("branch1", "branch2", "branch3", "branch4")
MAPS_SHOWN = 16  # per branch: the most active maps, a 4x4 grid that stays legible


def grid_shape(count: int) -> tuple[int, int]:
    columns = int(np.ceil(np.sqrt(count)))
    return int(np.ceil(count / columns)), columns


def filters_figure(model: GoogLeNet, title: str) -> Figure:
    """conv1's filters (64 of 7x7x3 in the paper) as colour tiles, each scaled to its own range
    around a mid-grey zero, so that the weights' signs read as light and dark."""
    weights = model.conv1.conv.weight.detach().float().cpu()  # N x 3 x k x k
    scale = weights.abs().amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-12)
    tiles = (0.5 + 0.5 * weights / scale).permute(0, 2, 3, 1).numpy()
    rows, columns = grid_shape(len(tiles))
    figure = Figure(figsize=(columns * 0.6 + 0.4, rows * 0.6 + 0.7))
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, index in zip(axes.flat, range(rows * columns)):
        ax.axis("off")
        if index < len(tiles):
            ax.imshow(tiles[index], interpolation="nearest")
    k = weights.shape[-1]
    figure.suptitle(f"{title}: conv1, {len(tiles)} filters of {k}x{k}x3", fontsize=9)
    return figure


@dataclass(frozen=True)
class BranchMaps:
    """One branch's feature maps for one image: C x H x W, and its label."""

    label: str
    maps: np.ndarray


def branch_labels(model: GoogLeNet, key: str) -> tuple[str, ...]:
    module = getattr(model, model.layer_name(key))
    k = module.branch3[1].conv.kernel_size[0]
    return ("1x1", "3x3 (after its 1x1 reduce)", f"{k}x{k} (after its 1x1 reduce)",
            "pool projection (3x3 max pool, 1x1)")


@torch.no_grad()
def branch_maps(model: GoogLeNet, image: Image.Image, preprocessing: Preprocessing,
                key: str) -> tuple[Image.Image, list[BranchMaps]]:
    """The view the model saw and the four branch outputs of Inception module `key` ("4c")."""
    name = model.layer_name(key)
    if not name.startswith("inception"):
        keys = [n.removeprefix("inception") for n in model.feature_names if n.startswith("inception")]
        raise ValueError(f"{key!r} is not an Inception module; choose one of {', '.join(keys)}")
    view, x = model_view(image, preprocessing)
    before = model.feature_names[model.feature_names.index(name) - 1]
    module_input = model.feature_maps(x, [before])[before]
    module = getattr(model, name)
    labels = branch_labels(model, key)
    maps = [BranchMaps(label, getattr(module, branch)(module_input)[0].float().numpy())
            for branch, label in zip(BRANCHES, labels)]
    return view, maps


def most_active(maps: np.ndarray, count: int = MAPS_SHOWN) -> np.ndarray:
    """The indices of the `count` maps with the largest mean activation, largest first."""
    return np.argsort(-maps.mean(axis=(1, 2)), kind="stable")[:count]


def features_figure(view: Image.Image, branches: list[BranchMaps], title: str) -> Figure:
    """The view, then per branch a grid of its most active maps (each on its own scale)."""
    rows, columns = grid_shape(MAPS_SHOWN)
    figure = Figure(figsize=(2.2 + 2.2 * len(branches), 2.8))
    outer = figure.add_gridspec(1, 1 + len(branches), wspace=0.12)
    ax = figure.add_subplot(outer[0])
    ax.imshow(view)
    ax.set_title("input (the model's view)", fontsize=8)
    ax.axis("off")
    for slot, branch in enumerate(branches, start=1):
        inner = outer[slot].subgridspec(rows, columns, wspace=0.04, hspace=0.04)
        chosen = most_active(branch.maps)
        for cell, index in enumerate(chosen):
            tile = figure.add_subplot(inner[cell // columns, cell % columns])
            tile.imshow(branch.maps[index], cmap="viridis", interpolation="nearest")
            tile.axis("off")
            if cell == 0:
                tile.set_title(f"{branch.label}\n{len(branch.maps)} maps, {len(chosen)} most active",
                               fontsize=7, loc="left")
    figure.suptitle(title, fontsize=9, y=1.08)  # above the branch titles
    return figure
