"""Weights published by others, and ImageNet's class names."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from googlenet.weights.download import PublishedFile


@dataclass(frozen=True)
class Published:
    name: str
    variant: str
    file: PublishedFile
    preprocess: str  # a preset of data.preprocessing
    description: str


PUBLISHED: dict[str, Published] = {
    "imagenet": Published(
        "imagenet", "bn",
        PublishedFile("https://download.pytorch.org/models/googlenet-1378be20.pth",
                      "googlenet-1378be20.pth", "sha256", "1378be20"),
        "inception",  # torchvision's transform_input=True (see the preset)
        "torchvision's GoogLeNet_Weights.IMAGENET1K_V1 (69.78% top-1, 89.53% top-5)"),
    "bvlc": Published(
        "bvlc", "paper",
        PublishedFile("http://dl.caffe.berkeleyvision.org/bvlc_googlenet.caffemodel",
                      "bvlc_googlenet.caffemodel", "sha1", "405fc5acd08a3bb12de8ee5e23a96bec22f08204"),
        "caffe",
        "BVLC's Caffe replication of the paper (68.7% top-1, 88.9% top-5, one center crop)"),
}


def recognise(sha256: str) -> Published | None:
    """The published file with this content, where its published digest is a sha256."""
    for published in PUBLISHED.values():
        if published.file.algorithm == "sha256" and sha256.startswith(published.file.digest_prefix):
            return published
    return None


@cache
def imagenet_classes() -> tuple[str, ...]:
    """ImageNet-1k's class names in the standard (sorted WordNet id) order, from torchvision."""
    from torchvision.models import GoogLeNet_Weights

    return tuple(GoogLeNet_Weights.IMAGENET1K_V1.meta["categories"])
