"""Where the network looked: class activation maps on any trunk layer, built on Captum.

    model = load_model("imagenet").eval()
    result = explain(model, Image.open("cat.jpg"), layer="4e")   # classes, input: model's record
    overlay(result).save("cat_gradcam.png")

Grad-CAM (Selvaraju et al., 2017) weights a layer's feature maps by the spatial mean of the
class score's gradient; Grad-CAM++ (Chattopadhay et al., 2018) by a weighted sum of the positive
gradients, which spreads the map over several instances of a class; integrated gradients
(Sundararajan et al., 2017) attributes the score to input pixels along a path from a black
image. Captum's hooks and attribution classes do the gradient work; nothing here registers a
hook of its own.
"""

from __future__ import annotations

import copy
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms.functional import center_crop, resize

from googlenet.artifact.build import artifact_of
from googlenet.data.preprocessing import Preprocessing
from googlenet.data.transforms import Normalize, as_pil, to_float
from googlenet.errors import ConfigError
from googlenet.extras import require_extra
from googlenet.model.network import GoogLeNet
from googlenet.visual.options import DEFAULT_EXPLAIN_LAYER, EXPLAIN_METHODS

METHODS = EXPLAIN_METHODS
DEFAULT_LAYER = DEFAULT_EXPLAIN_LAYER
COLORMAP = "jet"  # the usual CAM colours: red where the map is high
DISPLAY_SIZE = 320  # overlays of small inputs (32x32 digits) are enlarged to be seen


@dataclass(frozen=True)
class Explanation:
    """One image's map: the view the model saw, a heat map over it in [0, 1], and the class."""

    view: Image.Image  # RGB, the model's input size (resize and center crop)
    heatmap: np.ndarray  # H x W float32 in [0, 1], the view's size
    class_index: int
    class_name: str
    probability: float
    layer: str
    method: str


def require_captum() -> None:
    require_extra("explain", "explanations")


def model_view(image: Image.Image, preprocessing: Preprocessing) -> tuple[Image.Image, Tensor]:
    """The center crop the model sees (as predict and evaluate take it), and its input tensor."""
    pil = resize(as_pil(image), [preprocessing.resize_size],
                 interpolation=InterpolationMode(preprocessing.interpolation))
    view = center_crop(pil, [preprocessing.input_size, preprocessing.input_size])
    return view, Normalize(preprocessing)(to_float(view))[None]


def resolve_class(target: str | int | None, classes: tuple[str, ...], logits: Tensor | None) -> int:
    """The predicted class (the largest of `logits`), or one named by its name or index."""
    if target is None:
        assert logits is not None
        return int(logits.argmax())
    if str(target) in classes:
        return classes.index(str(target))
    if isinstance(target, int) or str(target).isdigit():
        index = int(target)
        if 0 <= index < len(classes):
            return index
    shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
    raise ConfigError(f"no class {target!r}: give a class name or an index 0..{len(classes) - 1} "
                      f"({shown})")


def normalise(heat: Tensor, size: tuple[int, int], quantile: float = 1.0) -> np.ndarray:
    """1 x 1 x h x w -> H x W in [0, 1], upsampled bilinearly (an all-zero map stays zero)."""
    heat = F.interpolate(heat.detach().float(), size=size, mode="bilinear", align_corners=False)[0, 0]
    heat = heat.clamp(min=0)
    top = torch.quantile(heat.flatten(), quantile) if quantile < 1 else heat.max()
    return (heat / top).clamp(max=1).numpy() if top > 0 else heat.numpy()


def gradcam(model: GoogLeNet, layer: torch.nn.Module, x: Tensor, target: int) -> Tensor:
    from captum.attr import LayerGradCam

    return LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)


def gradcam_plus_plus(model: GoogLeNet, layer: torch.nn.Module, x: Tensor, target: int) -> Tensor:
    """Grad-CAM++'s weights (their Eq. 19, with the exponential's derivatives as in their code):
    alpha = g^2 / (2 g^2 + sum(A) g^3), w_c = sum over space of alpha * relu(g)."""
    from captum._utils.gradient import compute_layer_gradients_and_eval

    grads, acts = compute_layer_gradients_and_eval(model, layer, x, target_ind=target)
    g, a = grads[0], acts[0]
    denominator = 2 * g.pow(2) + a.sum(dim=(2, 3), keepdim=True) * g.pow(3)
    alpha = g.pow(2) / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    weights = (alpha * g.clamp(min=0)).sum(dim=(2, 3), keepdim=True)
    return (weights * a).sum(1, keepdim=True).clamp(min=0)


def integrated_gradients(model: GoogLeNet, x: Tensor, black: Tensor, target: int,
                         steps: int = 24) -> Tensor:
    """Pixel attributions along the path from a black image (the paper's baseline for images),
    summed over colour, smoothed."""
    from captum.attr import IntegratedGradients

    attributions = IntegratedGradients(model).attribute(x, baselines=black, target=target,
                                                        n_steps=steps, internal_batch_size=8)
    heat = attributions.sum(1, keepdim=True).clamp(min=0)
    return F.avg_pool2d(heat, 5, stride=1, padding=2)  # single pixels are unreadable on a slide


def explain(model: GoogLeNet, image: Image.Image, classes: Sequence[str] | None = None,
            preprocessing: Preprocessing | None = None, *, target: str | int | None = None,
            layer: str = DEFAULT_LAYER, method: str = "gradcam") -> Explanation:
    """A heat map of where `model` (in eval mode) found `target` (default: its top class).
    `classes` and `preprocessing`: the model's own (its record) unless given."""
    classes = tuple(classes) if classes is not None else model.classes
    if preprocessing is None:
        preprocessing = artifact_of(model).preprocessing
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    require_captum()
    layer_name = model.layer_name(layer)  # ValueError naming the layers
    view, x = model_view(image, preprocessing)
    with torch.no_grad():
        probabilities = model(x).softmax(1)[0]
    index = resolve_class(target, classes, probabilities)
    with torch.enable_grad():
        if method == "integrated-gradients":
            black = Normalize(preprocessing)(torch.zeros_like(x))
            heat, quantile = integrated_gradients(model, x, black, index), 0.99
        else:
            cam = gradcam if method == "gradcam" else gradcam_plus_plus
            heat, quantile = cam(model, getattr(model, layer_name), x, index), 1.0
    heatmap = normalise(heat, (view.height, view.width), quantile)
    return Explanation(view, heatmap, index, classes[index], float(probabilities[index]),
                       layer_name if method != "integrated-gradients" else "input", method)


def overlay(explanation: Explanation, alpha: float = 0.5) -> Image.Image:
    """The heat map in colour over the view, enlarged (nearest) when the input is small."""
    colours = colormaps[COLORMAP](explanation.heatmap)[..., :3]
    base = np.asarray(explanation.view, dtype=np.float32) / 255
    blended = Image.fromarray(np.uint8(255 * ((1 - alpha) * base + alpha * colours)))
    scale = max(1, DISPLAY_SIZE // max(blended.size))
    return blended.resize((blended.width * scale, blended.height * scale), Image.Resampling.NEAREST)


def explanation_figure(explanation: Explanation, title: str) -> Figure:
    """The view and its overlay side by side, titled with the class and the method: a slide."""
    figure = Figure(figsize=(6.4, 3.6))
    axes = figure.subplots(1, 2)
    shown = overlay(explanation)
    for ax, picture, label in ((axes[0], explanation.view.resize(shown.size, Image.Resampling.NEAREST),
                                "what the model saw"),
                               (axes[1], shown, f"{explanation.method} on {explanation.layer}")):
        ax.imshow(picture)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    figure.suptitle(f"{title}: {explanation.class_name} ({explanation.probability:.1%})", fontsize=10)
    figure.tight_layout()
    return figure


class Explainer:
    """Explanations from a server's thread pool: its own copy of the model (the serving copy stays
    free for predictions, and Captum's hooks never touch it), one explanation at a time."""

    def __init__(self, model: GoogLeNet, classes: tuple[str, ...], preprocessing: Preprocessing) -> None:
        require_captum()
        self.model = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).eval()
        self.classes, self.preprocessing = classes, preprocessing
        self.lock = threading.Lock()

    def __call__(self, image: Image.Image, target: str | None = None, layer: str = DEFAULT_LAYER,
                 method: str = "gradcam") -> Explanation:
        with self.lock:
            return explain(self.model, image, self.classes, self.preprocessing, target=target,
                           layer=layer, method=method)


def overlay_png(explanation: Explanation) -> bytes:
    buffer = io.BytesIO()
    overlay(explanation).save(buffer, format="PNG")
    return buffer.getvalue()
