"""Feature visualisation and DeepDream: images made by gradient ascent on a layer's activations.

`channel_image` finds the input that most excites one channel, with what Olah et al. ("Feature
Visualization", Distill 2017) found necessary for natural-looking results on this very network
(InceptionV1): a Fourier image parameterisation whose frequencies are scaled by 1/f, colours
decorrelated with the ImageNet colour covariance, and robustness to jitter, scale and rotation.
`dream` is Mordvintsev et al.'s DeepDream (2015): gradient ascent on the squared activations of a
layer, over several octaves of a photograph. Lucent, the PyTorch port of Lucid, pins an old
torch, so both are written here, small.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from googlenet.data.preprocessing import Preprocessing
from googlenet.data.transforms import Normalize, as_pil, to_float
from googlenet.errors import ConfigError
from googlenet.model.layers import ConvUnit, Inception
from googlenet.model.network import GoogLeNet

# Lucid's square root of the ImageNet RGB colour covariance: optimising in this basis
# decorrelates the colour channels (Olah et al. 2017, "Preconditioning and parameterisation").
COLOR_CORRELATION_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05],
                                           [0.27, -0.09, 0.03]])
COLOR_CORRELATION = COLOR_CORRELATION_SVD_SQRT / COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max()


@dataclass(frozen=True)
class ChannelSettings:
    size: int = 128  # pixels of the square image
    steps: int = 128
    lr: float = 0.05
    jitter: int = 8  # pixels; then scale, rotate, jitter again (Lucid's standard transforms)
    scales: tuple[float, ...] = (1.0, 0.975, 1.025, 0.95, 1.05)
    degrees: int = 5  # rotations drawn from -degrees..degrees
    seed: int = 0


def check_channel(model: GoogLeNet, layer: str, channel: int) -> str:
    name = model.layer_name(layer)  # ValueError naming the layers
    channels = layer_channels(model, name)
    if not 0 <= channel < channels:
        raise ConfigError(f"{name} has {channels} channels: choose a channel from 0 to {channels - 1}")
    return name


def layer_channels(model: GoogLeNet, name: str) -> int:
    size = model.min_input_size
    with torch.no_grad():
        return model.feature_maps(torch.zeros(1, 3, size, size), [name])[name].shape[1]


class FourierImage(torch.nn.Module):
    """An image parameterised by its 2-D spectrum, scaled by 1/f so that every frequency learns at
    the same rate, and by decorrelated colour channels; `forward()` gives RGB in [0, 1]."""

    def __init__(self, size: int, generator: torch.Generator, decay: float = 1.0) -> None:
        super().__init__()
        fy = torch.fft.fftfreq(size)[:, None]
        fx = torch.fft.rfftfreq(size)[None, :]
        frequencies = torch.sqrt(fx * fx + fy * fy)
        self.register_buffer("scale", 1.0 / torch.clamp(frequencies, min=1.0 / size) ** decay)
        self.spectrum = torch.nn.Parameter(
            0.01 * torch.randn(3, *frequencies.shape, 2, generator=generator))
        self.size = size

    def forward(self) -> Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho") / 4.0
        return torch.sigmoid(torch.einsum("ij,jhw->ihw", COLOR_CORRELATION, image))[None]


def robust_view(image: Tensor, settings: ChannelSettings, generator: torch.Generator) -> Tensor:
    """Jitter, scale, rotate, jitter: the result must survive all four (Olah et al. 2017)."""
    pad = settings.jitter
    x = F.pad(image, (pad, pad, pad, pad), mode="constant", value=0.5)
    x = roll(x, settings.jitter, generator)
    scale = settings.scales[int(torch.randint(len(settings.scales), (1,), generator=generator))]
    angle = math.radians(float(torch.randint(-settings.degrees, settings.degrees + 1, (1,),
                                             generator=generator)))
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[[cos, -sin, 0.0], [sin, cos, 0.0]]], dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    return roll(x, max(1, settings.jitter // 2), generator)


def roll(x: Tensor, pixels: int, generator: torch.Generator) -> Tensor:
    dy, dx = (int(v) for v in torch.randint(-pixels, pixels + 1, (2,), generator=generator))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def channel_activation(model: GoogLeNet, layer: str, channel: int, x: Tensor) -> Tensor:
    """The channel's mean activation over space (Lucid's `channel` objective), per image."""
    return model.feature_maps(x, [layer])[layer][:, channel].mean(dim=(1, 2))


def channel_pre_relu(model: GoogLeNet, layer: str, channel: int, x: Tensor) -> Tensor:
    """The channel's mean over space before its ReLU, where the layer ends in one (a convolution
    or an Inception module): the objective Olah et al. optimised on InceptionV1 ("mixed4a_pre_relu"),
    which gives a gradient even where the channel starts switched off. Other layers: after."""
    return pre_relu_map(model, layer, channel, x).mean(dim=(1, 2))


def pre_relu_map(model: GoogLeNet, layer: str, channel: int, x: Tensor) -> Tensor:
    """N x H x W: the channel's map before its layer's last ReLU (after it, for other layers)."""
    module = getattr(model, layer)
    position = model.feature_names.index(layer)
    if not isinstance(module, (ConvUnit, Inception)):
        return model.feature_maps(x, [layer])[layer][:, channel]
    if position > 0:
        before = model.feature_names[position - 1]
        x = model.feature_maps(x, [before])[before]
    unit, index = (module, channel) if isinstance(module, ConvUnit) else branch_unit(module, channel)
    if isinstance(module, Inception):
        branch = [b for b in (module.branch1, module.branch2, module.branch3, module.branch4)
                  if b is unit or (isinstance(b, torch.nn.Sequential) and b[-1] is unit)][0]
        if isinstance(branch, torch.nn.Sequential):
            x = branch[:-1](x)
    out = unit.conv(x)
    if unit.bn is not None:
        out = unit.bn(out)
    return out[:, index]


def branch_unit(module: Inception, channel: int) -> tuple[ConvUnit, int]:
    """The ConvUnit that makes `channel` of the module's concatenated output, and its index there."""
    for branch in (module.branch1, module.branch2, module.branch3, module.branch4):
        unit = branch if isinstance(branch, ConvUnit) else branch[-1]
        if channel < unit.conv.out_channels:
            return unit, channel
        channel -= unit.conv.out_channels
    raise ConfigError(f"channel out of range by {channel}")


def channel_image(model: GoogLeNet, preprocessing: Preprocessing, layer: str, channel: int,
                  settings: ChannelSettings = ChannelSettings()) -> Image.Image:
    """The image that most excites `channel` of `layer` (model in eval mode; weights untouched)."""
    name = check_channel(model, layer, channel)
    generator = torch.Generator().manual_seed(settings.seed)
    image = FourierImage(settings.size, generator)
    optimizer = torch.optim.Adam(image.parameters(), lr=settings.lr)
    normalise = Normalize(preprocessing)
    with frozen(model):
        for _ in range(settings.steps):
            optimizer.zero_grad()
            x = normalise(robust_view(image(), settings, generator))
            loss = -channel_pre_relu(model, name, channel, x).sum()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return to_image(image()[0])


@contextmanager
def frozen(model: GoogLeNet) -> Iterator[None]:
    """The weights get no gradients while the image is optimised; as they were afterwards."""
    before = [p.requires_grad for p in model.parameters()]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(model.parameters(), before):
            parameter.requires_grad_(flag)


def to_image(x: Tensor) -> Image.Image:
    """3 x H x W in [0, 1] -> RGB."""
    array = (x.detach().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array)


@dataclass(frozen=True)
class DreamSettings:
    max_side: int = 320  # the photograph is resized to this first: the CPU budget
    octaves: int = 3
    octave_scale: float = 1.4
    steps: int = 10  # per octave
    step_size: float = 0.02  # in [0, 1] image units, per normalised gradient step
    jitter: int = 16
    seed: int = 0


def dream(model: GoogLeNet, photo: Image.Image, preprocessing: Preprocessing, layer: str,
          settings: DreamSettings = DreamSettings()) -> Image.Image:
    """DeepDream: from the smallest octave up, ascend the mean squared activation of `layer`,
    each octave starting from the previous one's details on the larger photograph."""
    name = model.layer_name(layer)
    base = to_float(shrink_to_fit(as_pil(photo), settings.max_side))[None]
    sizes = [tuple(max(model.min_input_size, round(s / settings.octave_scale ** k)) for s in base.shape[2:])
             for k in reversed(range(settings.octaves))]
    generator = torch.Generator().manual_seed(settings.seed)
    normalise = Normalize(preprocessing)
    detail = torch.zeros(1, 3, *sizes[0])
    with frozen(model):
        for size in sizes:
            octave_base = F.interpolate(base, size=size, mode="bilinear", align_corners=False)
            detail = F.interpolate(detail, size=size, mode="bilinear", align_corners=False)
            x = (octave_base + detail).clamp(0, 1)
            for _ in range(settings.steps):
                x = ascend(model, normalise, name, x, settings, generator)
            detail = x - octave_base
    return to_image(x[0])


def ascend(model: GoogLeNet, normalise: Normalize, name: str, x: Tensor, settings: DreamSettings,
           generator: torch.Generator) -> Tensor:
    """One normalised gradient step on a randomly shifted copy (hides the network's grid)."""
    dy, dx = (int(v) for v in torch.randint(-settings.jitter, settings.jitter + 1, (2,),
                                            generator=generator))
    shifted = torch.roll(x, (dy, dx), (2, 3)).requires_grad_(True)
    activations = model.feature_maps(normalise(shifted), [name])[name]
    activations.pow(2).mean().backward()
    gradient = shifted.grad / shifted.grad.abs().mean().clamp(min=1e-8)
    stepped = (shifted + settings.step_size * gradient).detach()
    return torch.roll(stepped, (-dy, -dx), (2, 3)).clamp(0, 1)


def shrink_to_fit(image: Image.Image, max_side: int) -> Image.Image:
    """Scaled down (never up), aspect kept, so that its longer side is at most `max_side`."""
    scale = max_side / max(image.size)
    if scale >= 1:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.LANCZOS)
