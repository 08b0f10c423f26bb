"""Choosing the device (cuda, mps, cpu) and the precision to train and evaluate in."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from googlenet.errors import ConfigError


@dataclass(frozen=True)
class Precision:
    device_type: str
    dtype: torch.dtype | None  # None: float32

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


def cpu_has_fast_bf16() -> bool:
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_precision(amp: str, device: torch.device) -> Precision:
    """`auto`: bf16 on GPUs that have it (else fp16), bf16 on CPUs with native bf16, else fp32.

    On CPUs without native bf16 (avx512_bf16 or AMX), bf16 autocast measured slower
    than fp32 (see docs/results.md), so `auto` keeps fp32 there.
    """
    if amp == "off" or device.type == "mps" and amp == "auto":
        return Precision(device.type, None)
    if amp == "auto":
        if device.type == "cuda":
            amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            amp = "bf16" if cpu_has_fast_bf16() else "off"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]
    return Precision(device.type, dtype)
