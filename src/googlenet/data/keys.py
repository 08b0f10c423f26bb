"""Per-sample randomness as a pure function of (seed, epoch, sample index).

Exact mid-epoch resume needs every augmentation to be reproducible without
replaying the samples before it, and independent of which worker process
draws it or how many samples that worker has seen. So no transform here reads
global or worker RNG state: a sample's randomness is an integer hash of
(seed, epoch, index), and the epoch's order a hash of (seed, epoch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor

MASK32 = 0xFFFFFFFF
IntOrTensor = TypeVar("IntOrTensor", int, Tensor)

# Streams keep the hashes of one sample for different purposes independent.
STREAM_GENERATOR_HIGH, STREAM_GENERATOR_LOW = 0, 1
STREAM_CROP_Y, STREAM_CROP_X, STREAM_FLIP = 2, 3, 4
STREAM_ORDER_HIGH, STREAM_ORDER_LOW = 5, 6


@dataclass(frozen=True)
class SampleKey:
    seed: int
    epoch: int
    index: int


def mix32(x: IntOrTensor) -> IntOrTensor:
    """A bijective 32-bit integer hash (xor-shift-multiply), on Python ints or int64 tensors.

    Both multipliers are odd and below 2**31, so the products of 32-bit values fit
    in int64 without overflow and tensors and ints give the same numbers.
    """
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x2C1B3C6D) & MASK32
    return x ^ (x >> 16)


def fold32(value: int) -> int:
    """Any Python int (negative or past 64 bits too) folded into 32 bits."""
    value &= (1 << 64) - 1
    return (value ^ (value >> 32)) & MASK32


def stream_hash(seed: int, epoch: int, stream: int) -> int:
    return mix32(mix32(mix32(fold32(seed)) ^ fold32(epoch)) ^ stream)


def sample_hash(seed: int, epoch: int, index: IntOrTensor, stream: int) -> IntOrTensor:
    """32-bit hash of one sample (index an int) or of many (index an int64 tensor)."""
    return mix32((index & MASK32) ^ stream_hash(seed, epoch, stream))


def uniform(seed: int, epoch: int, index: Tensor, stream: int) -> Tensor:
    """Uniform numbers in [0, 1), one per index (float64, exact for 32-bit hashes)."""
    return sample_hash(seed, epoch, index.long(), stream).double() / 2**32


def generator_for(key: SampleKey | None) -> torch.Generator:
    """A private generator for one sample; without a key, seeded from the global RNG."""
    if key is None:
        seed = int(torch.randint(0, 2**62, ()).item())
    else:
        high = sample_hash(key.seed, key.epoch, key.index, STREAM_GENERATOR_HIGH)
        seed = (high << 32) | sample_hash(key.seed, key.epoch, key.index, STREAM_GENERATOR_LOW)
    return torch.Generator().manual_seed(seed)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's sample order."""
    high = stream_hash(seed, epoch, STREAM_ORDER_HIGH)
    return torch.Generator().manual_seed((high << 32) | stream_hash(seed, epoch, STREAM_ORDER_LOW))
