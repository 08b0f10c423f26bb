"""Choosing the device (cuda, mps, cpu) and the precision to train and evaluate in."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import torch

from googlenet.errors import ConfigError


@dataclass(frozen=True)
class Precision:
    device_type: str
    dtype: torch.dtype | None  # None: float32
    why: str = field(default="", compare=False)  # how it was chosen, for the run's first line

    def autocast(self) -> AbstractContextManager:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]


def resolve_device(name: str | torch.device, local_rank: int = 0) -> torch.device:
    """`auto` (cuda, else mps, else cpu), or a device name; a missing CUDA is a ConfigError."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def cpu_bf16_instructions() -> str | None:
    """The CPU's native bf16 instructions (AMX, else avx512_bf16), None without."""
    if torch.cpu._is_amx_tile_supported():
        return "AMX"
    return "avx512_bf16" if torch.cpu._is_avx512_bf16_supported() else None


def cpu_has_fast_bf16() -> bool:
    return cpu_bf16_instructions() is not None


def resolve_precision(amp: str, device: torch.device) -> Precision:
    """`auto`: bf16 on GPUs that have it (else fp16), bf16 on CPUs with native bf16, else fp32.

    On CPUs without native bf16 (avx512_bf16 or AMX), bf16 autocast measured slower
    than fp32 (see docs/results.md), so `auto` keeps fp32 there.
    """
    if amp == "off":
        return Precision(device.type, None, "--amp off")
    if amp != "auto":
        why = f"--amp {amp}"
    elif device.type == "mps":
        amp, why = "off", "--amp auto on mps"
    elif device.type == "cuda":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        why = "--amp auto: this GPU " + ("has bf16" if amp == "bf16" else "lacks bf16")
    elif (instructions := cpu_bf16_instructions()) is not None:
        amp, why = "bf16", f"--amp auto: this CPU has {instructions}"
    else:
        amp, why = "off", "--amp auto: no native bf16 on this CPU, where bf16 is slower"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]
    return Precision(device.type, dtype, why)
