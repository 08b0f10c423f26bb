"""Choosing the device (cuda, mps, cpu) and the precision to train and evaluate in."""

from __future__ import annotations

import torch

from .engine import Precision


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def cpu_has_fast_bf16() -> bool:
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_precision(amp: str, device: torch.device) -> Precision:
    """`auto`: bf16 on GPUs that have it (else fp16), bf16 on CPUs with native bf16, else fp32.

    On CPUs without native bf16 (avx512_bf16 or AMX), bf16 autocast measured slower
    than fp32 (see README), so `auto` keeps fp32 there.
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
