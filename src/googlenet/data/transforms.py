"""Transforms: the paper's augmentation (Sec. 6), pad-crop-flip for small images, the eval crop.

Every transform is called as `transform(image, key=None) -> Tensor`, with image a
PIL image or a uint8 3 x H x W tensor and the result float32 3 x S x S,
normalised by `Normalize` (the artifact's Preprocessing). Random choices come from `key` (keys.py),
so an output is a pure function of (image, seed, epoch, index); without a key
they are drawn from the global RNG. Crops and resizes run in PIL, which has all
four of the paper's interpolations (a tensor resize has no box/area filter);
photometric distortions run on float tensors (PIL's ImageEnhance formulas, which Howard used,
without rounding to 8 bits between steps).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as F

from googlenet.data.config import PHOTOMETRIC_POLICIES, AugmentConfig
from googlenet.data.images import full_size, to_rgb
from googlenet.data.keys import STREAM_CROP_X, STREAM_CROP_Y, STREAM_FLIP, SampleKey, generator_for, uniform
from googlenet.data.preprocessing import Preprocessing
from googlenet.data.resize import center_box, draft_size, resize_region, resized_size
from googlenet.errors import ConfigError

AnyImage = Image.Image | Tensor
Transform = Callable[..., Tensor]  # (image, key: SampleKey | None = None) -> normalised tensor
Crop = tuple[int, int, int, int]  # top, left, height, width

# Sec. 6: "bilinear, area, nearest neighbor and cubic interpolation methods with equal probability".
INTERPOLATIONS = {"bilinear": Image.Resampling.BILINEAR, "area": Image.Resampling.BOX,
                  "nearest": Image.Resampling.NEAREST, "bicubic": Image.Resampling.BICUBIC}
INTERPOLATION_NAMES = tuple(INTERPOLATIONS)

# AlexNet's PCA lighting noise (Krizhevsky et al., 2012): eigen-decomposition of ImageNet's
# RGB covariance for pixel values in 0..1, the numbers fb.resnet.torch and timm use.
PCA_EIGENVALUES = torch.tensor([0.2175, 0.0188, 0.0045])
PCA_EIGENVECTORS = torch.tensor([[-0.5675, 0.7192, 0.4009],
                                 [-0.5808, -0.0045, -0.8140],
                                 [-0.5836, -0.6948, 0.4203]])
JITTERS = ("brightness", "contrast", "saturation", "hue")  # torchvision's ColorJitter
# Howard (arXiv 1312.5402, Sec. 2.1), whom Sec. 6 cites for its photometric distortions: PIL's
# ImageEnhance Brightness, Contrast and Color (saturation) in a random order, each factor drawn
# from [0.5, 1.5] (1 leaves the image as it is), then AlexNet's lighting noise.
HOWARD_DISTORTIONS = ("brightness", "contrast", "saturation")
HOWARD_FACTORS = (0.5, 1.5)


@dataclass(frozen=True)
class PaperParams:
    """The random choices of one `paper` augmentation, drawn before any pixel is touched."""

    crop: Crop
    interpolation: str
    flip: bool
    photometric: tuple[tuple[str, float], ...]  # (distortion, factor) in the order applied
    lighting: tuple[float, float, float] | None  # PCA alphas


def draw_uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * torch.rand((), generator=generator, dtype=torch.float64).item()


def draw_integer(count: int, generator: torch.Generator) -> int:
    return int(torch.randint(count, (), generator=generator).item())


def sample_crop(height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
                generator: torch.Generator, tries: int = 10) -> Crop:
    """Sec. 6: a patch covering scale (8%..100%) of the area with aspect ratio in ratio (3/4..4/3).

    torchvision's RandomResizedCrop sampling (uniform area, log-uniform aspect),
    except that the rounded patch itself must satisfy both bounds; after `tries`
    misses, the largest central patch whose aspect ratio is in range.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(tries):
        target = area * draw_uniform(*scale, generator)
        aspect = math.exp(draw_uniform(*log_ratio, generator))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if (0 < w <= width and 0 < h <= height and scale[0] <= w * h / area <= scale[1]
                and ratio[0] <= w / h <= ratio[1]):
            top = draw_integer(height - h + 1, generator)
            return top, draw_integer(width - w + 1, generator), h, w
    return central_crop(height, width, ratio)


def central_crop(height: int, width: int, ratio: tuple[float, float]) -> Crop:
    h, w = height, width
    if width / height < ratio[0]:
        h = min(height, round(width / ratio[0]))
    elif width / height > ratio[1]:
        w = min(width, round(height * ratio[1]))
    return (height - h) // 2, (width - w) // 2, h, w


def sample_howard(generator: torch.Generator) -> tuple[tuple[str, float], ...]:
    """Howard's three factors from [0.5, 1.5], in a random order."""
    order = torch.randperm(len(HOWARD_DISTORTIONS), generator=generator).tolist()
    return tuple((HOWARD_DISTORTIONS[i], draw_uniform(*HOWARD_FACTORS, generator)) for i in order)


def sample_jitter(augment: AugmentConfig,
                  generator: torch.Generator) -> tuple[tuple[str, float], ...]:
    """ColorJitter's factors, in a random order like torchvision's; zero strengths are skipped."""
    chosen, strengths = [], augment.jitter_strengths()
    for i in torch.randperm(len(JITTERS), generator=generator).tolist():
        strength = strengths[JITTERS[i]]
        if strength > 0:
            low, high = ((-strength, strength) if JITTERS[i] == "hue"
                         else (max(0.0, 1 - strength), 1 + strength))
            chosen.append((JITTERS[i], draw_uniform(low, high, generator)))
    return tuple(chosen)


def sample_paper_params(height: int, width: int, augment: AugmentConfig,
                        generator: torch.Generator) -> PaperParams:
    crop = sample_crop(height, width, augment.scale, augment.ratio, generator)
    interpolation = (INTERPOLATION_NAMES[draw_integer(len(INTERPOLATION_NAMES), generator)]
                     if augment.random_interpolation else "bilinear")
    flip = draw_uniform(0.0, 1.0, generator) < augment.hflip
    photometric = (sample_howard(generator) if augment.photometric == "howard"
                   else sample_jitter(augment, generator))
    alphas = torch.randn(3, generator=generator, dtype=torch.float64) * augment.pca_lighting
    lighting = tuple(alphas.tolist()) if augment.pca_lighting > 0 else None
    return PaperParams(crop, interpolation, flip, photometric, lighting)  # type: ignore[arg-type]


# --- Photometric distortions on float 3 x H x W tensors in [0, 1], in place where safe.
# Results must not depend on the thread count (workers run with one thread, the main
# process with several): reductions go row by row, and every step is a separate
# multiply or add (fused multiply-adds round differently in vector and scalar code).


def grayscale(x: Tensor) -> Tensor:
    gray = x[0] * 0.2989  # ITU-R 601-2 luma, as torchvision
    gray += x[1] * 0.587
    gray += x[2] * 0.114
    return gray[None]


def blend_(x: Tensor, other: Tensor, factor: float) -> Tensor:
    return x.mul_(factor).add_(other * (1 - factor)).clamp_(0, 1)


def adjust_(x: Tensor, name: str, factor: float) -> Tensor:
    """PIL's ImageEnhance (Howard's tool) and torchvision's adjust_* on floats: a blend with
    black (brightness), the mean grey (contrast) or the grey image (saturation: PIL's Color)."""
    if name == "brightness":
        return x.mul_(factor).clamp_(0, 1)
    if name == "contrast":
        return blend_(x, grayscale(x).mean(-1).mean(-1).reshape(1, 1, 1), factor)
    if name == "saturation":
        return blend_(x, grayscale(x), factor)
    return F.adjust_hue(x, factor)


def lighting_shift(alphas: tuple[float, float, float]) -> Tensor:
    """AlexNet's PCA lighting: the RGB offset sum_i alpha_i * eigenvalue_i * eigenvector_i."""
    rgb = PCA_EIGENVECTORS @ (torch.tensor(alphas, dtype=torch.float32) * PCA_EIGENVALUES)
    return rgb.reshape(3, 1, 1)


# --- Conversions.


def as_pil(image: AnyImage) -> Image.Image:
    if isinstance(image, Tensor):
        return F.to_pil_image(as_uint8(image))
    return to_rgb(image)


def as_uint8(image: AnyImage) -> Tensor:
    """A PIL image, a uint8 3 x H x W tensor or a float one in [0, 1] (torchvision's ToTensor
    output) -> uint8 3 x H x W, RGB."""
    if isinstance(image, Image.Image):
        return F.pil_to_tensor(to_rgb(image))
    if image.ndim != 3 or image.shape[0] != 3 or not (image.dtype == torch.uint8
                                                       or image.is_floating_point()):
        raise ValueError(f"expected a 3 x H x W RGB image tensor (uint8, or float in [0, 1]), got "
                         f"{image.dtype} {tuple(image.shape)}")
    if image.is_floating_point():
        return image.detach().mul(255).round_().clamp_(0, 255).to(torch.uint8)
    return image


def to_float(image: Image.Image) -> Tensor:
    return F.pil_to_tensor(image).float().div_(255)


class Normalize:
    """The one implementation of a Preprocessing's normalisation on tensors: float RGB in [0, 1]
    (or uint8 0..255) -> the model's channel order, value scale, mean and std."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        scale, shift = preprocessing.affine()
        self.bgr = preprocessing.channel_order == "BGR"
        self.scale = torch.tensor(scale, dtype=torch.float32).reshape(3, 1, 1)
        self.shift = torch.tensor(shift, dtype=torch.float32).reshape(3, 1, 1)

    def __call__(self, x: Tensor) -> Tensor:
        """float (N x) 3 x H x W in [0, 1], RGB."""
        if self.bgr:
            x = x.flip(-3)
        return x.mul(self.scale).add_(self.shift)

    def from_uint8(self, x: Tensor) -> Tensor:
        """uint8 (N x) 3 x H x W, RGB -> normalised float32, in two in-place passes (batched path)."""
        x = x.to(torch.float32, memory_format=torch.contiguous_format)
        if self.bgr:
            x = x.flip(-3)
        return x.mul_(self.scale / 255).add_(self.shift)


def random_key() -> SampleKey:
    return SampleKey(int(torch.randint(0, 2**62, ()).item()), 0, 0)


# --- The transforms.


class PaperTransform:
    """Sec. 6: random-area, random-aspect patch, random interpolation, photometric distortions
    (Howard's by default), then PCA lighting; and BVLC's flip."""

    def __init__(self, augment: AugmentConfig, size: int, normalise: Normalize) -> None:
        self.augment, self.size, self.normalise = augment, size, normalise

    def params(self, height: int, width: int, key: SampleKey | None) -> PaperParams:
        return sample_paper_params(height, width, self.augment, generator_for(key))

    def __call__(self, image: AnyImage, key: SampleKey | None = None) -> Tensor:
        pil = as_pil(image)
        params = self.params(pil.height, pil.width, key)
        top, left, h, w = params.crop
        pil = pil.resize((self.size, self.size), INTERPOLATIONS[params.interpolation],
                         box=(left, top, left + w, top + h))  # crop and resize in one step
        x = to_float(pil)  # 3 x S x S
        if params.flip:
            x = x.flip(-1)
        for name, factor in params.photometric:
            x = adjust_(x, name, factor)
        if params.lighting is not None:  # after the distortions, as Howard
            x += lighting_shift(params.lighting)
        return self.normalise(x)


def resize_center_crop(images: Tensor, size: int) -> Tensor:
    """uint8 N x 3 x H x W -> N x 3 x size x size: shorter side resized, then center-cropped."""
    if images.shape[-2:] == (size, size):
        return images
    return F.center_crop(F.resize(images, [size], antialias=True), [size, size])


class CropFlip:
    """Zero-pad by `padding`, crop back to size at a random offset, flip (small images, airbench).

    Offsets and flips are hashes of (seed, epoch, index), so `batch` (whole batches
    at once, no per-sample Python) and a per-sample call give identical images.
    """

    def __init__(self, size: int, padding: int, hflip: float, normalise: Normalize) -> None:
        self.size, self.padding, self.hflip, self.normalise = size, padding, hflip, normalise

    def __call__(self, image: AnyImage, key: SampleKey | None = None) -> Tensor:
        key = key or random_key()
        return self.batch(as_uint8(image)[None], key.seed, key.epoch, torch.tensor([key.index]))[0]

    def batch(self, images: Tensor, seed: int, epoch: int, indices: Tensor) -> Tensor:
        images = resize_center_crop(images, self.size)  # N x 3 x S x S uint8
        n, p, steps = len(images), self.padding, torch.arange(self.size)
        dy = (uniform(seed, epoch, indices, STREAM_CROP_Y) * (2 * p + 1)).long()
        dx = (uniform(seed, epoch, indices, STREAM_CROP_X) * (2 * p + 1)).long()
        flip = uniform(seed, epoch, indices, STREAM_FLIP) < self.hflip
        rows = dy[:, None] + steps  # N x S
        cols = dx[:, None] + torch.where(flip[:, None], steps.flip(0), steps)  # N x S
        padded = torch.nn.functional.pad(images, (p, p, p, p))
        crops = padded[torch.arange(n)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
        # crops: N x S x S x 3 (advanced indices first), one gather for crop and flip together
        return self.normalise.from_uint8(crops.permute(0, 3, 1, 2))


class EvalTransform:
    """Resize the shorter side to the preprocessing's resize_size, center-crop input_size: the
    crop's region is resized alone (resize.py), so the cost follows the output."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        self.size, self.resize_to = preprocessing.input_size, preprocessing.resize_size
        self.resample = INTERPOLATIONS[preprocessing.interpolation]
        self.normalise = Normalize(preprocessing)

    def decode_size(self, width: int, height: int) -> tuple[int, int]:
        return draft_size(width, height, self.resize_to)

    def __call__(self, image: AnyImage, key: SampleKey | None = None) -> Tensor:
        pil = as_pil(image)
        box = center_box(*resized_size(*full_size(pil), self.resize_to), self.size)
        return self.normalise(to_float(resize_region(pil, self.resize_to, box, self.resample)))


def check_ranges(augment: AugmentConfig) -> None:
    a, jitter = augment, augment.jitter_strengths()
    checks = (  # (field, value, requirement, satisfied)
        ("augment.scale", a.scale, "0 < min <= max <= 1", 0 < a.scale[0] <= a.scale[1] <= 1),
        ("augment.ratio", a.ratio, "0 < min <= max", 0 < a.ratio[0] <= a.ratio[1]),
        ("augment.hflip", a.hflip, "in [0, 1]", 0 <= a.hflip <= 1),
        ("augment.hue", jitter["hue"], "in [0, 0.5]", 0 <= jitter["hue"] <= 0.5),
        *((f"augment.{name}", jitter[name], ">= 0", jitter[name] >= 0)
          for name in ("brightness", "contrast", "saturation")),
        *((f"augment.{name}", getattr(a, name), ">= 0", getattr(a, name) >= 0)
          for name in ("pca_lighting", "crop_padding")),
    )
    for name, value, requirement, satisfied in checks:
        if not satisfied:
            raise ConfigError(f"{name} must be {requirement}, got {value}")
    if a.photometric not in PHOTOMETRIC_POLICIES:
        raise ConfigError(f"augment.photometric must be {' or '.join(PHOTOMETRIC_POLICIES)}, "
                          f"got {a.photometric!r}")
    if a.photometric == "howard" and a.strengths_set():
        raise ConfigError(f"augment.{a.strengths_set()[0]} is a strength of photometric jitter; "
                          "howard draws its factors from [0.5, 1.5] (set photometric: jitter to "
                          "choose strengths)")


def eval_transform(preprocessing: Preprocessing) -> EvalTransform:
    return EvalTransform(preprocessing)


def train_transform(preprocessing: Preprocessing, augment: AugmentConfig) -> Transform:
    check_ranges(augment)
    normalise, size = Normalize(preprocessing), preprocessing.input_size
    if augment.policy == "paper":
        return PaperTransform(augment, size, normalise)
    if augment.policy == "crop-flip":
        return CropFlip(size, augment.crop_padding, augment.hflip, normalise)
    if augment.policy == "none":
        return eval_transform(preprocessing)
    raise ConfigError(f"augment.policy must be paper, crop-flip or none, got {augment.policy!r}")
