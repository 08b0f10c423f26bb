"""Download a published weights file once into torch's hub cache, its hash checked."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from googlenet.errors import ModelSourceError


@dataclass(frozen=True)
class PublishedFile:
    url: str
    file_name: str
    algorithm: str  # "sha256" or "sha1"
    digest_prefix: str  # the digest, or its first characters (torchvision's file names carry 8)


class DownloadError(ModelSourceError):
    """No network, a server error or a hash mismatch; the message says what to do."""


def hub_checkpoint_dir() -> Path:
    """Where torch.hub keeps downloaded weights ($TORCH_HOME/hub/checkpoints)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_digest(path: Path, published: PublishedFile, source: str) -> None:
    actual = file_digest(path, published.algorithm)
    if not actual.startswith(published.digest_prefix):
        raise DownloadError(f"{source} has {published.algorithm} {actual}, expected one starting "
                            f"with {published.digest_prefix}: the file is corrupt or not the "
                            "published one")


def fetch(published: PublishedFile, cache_dir: Path | None = None, timeout: float = 60.0) -> Path:
    """The cached file, downloaded first if absent. A cached file is re-checked every time."""
    cache_dir = Path(cache_dir) if cache_dir is not None else hub_checkpoint_dir()
    target = cache_dir / published.file_name
    if target.is_file():
        check_digest(target, published, str(target))
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part-{os.getpid()}")
    try:
        try:
            with urllib.request.urlopen(published.url, timeout=timeout) as response, \
                    open(partial, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DownloadError(f"cannot download {published.url} ({reason}). Without a network, "
                                f"download it elsewhere and place it at {target}") from None
        check_digest(partial, published, published.url)
        os.replace(partial, target)  # only a verified file ever has the cached name
    finally:
        partial.unlink(missing_ok=True)
    return target
