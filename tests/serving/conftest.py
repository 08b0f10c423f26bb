"""A real server (uvicorn on a free loopback port, in a thread) for the serving tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import running

from googlenet.serving.app import ServeConfig


@pytest.fixture(scope="session")
def served(digits_run) -> Iterator[str]:
    """The digits model served with the defaults."""
    with running(ServeConfig(model=str(digits_run.run_dir), threads=1)) as url:
        yield url


@pytest.fixture(scope="session")
def photos(tmp_path_factory, digits_run):
    """Digits as PNG photos of different sizes, and one JPEG."""
    from PIL import Image

    from googlenet.data.digits import digits_splits

    root = tmp_path_factory.mktemp("photos")
    _, val = digits_splits()
    files = []
    for i, size in enumerate((32, 48, 64)):
        image = Image.fromarray(val.images[i].permute(1, 2, 0).numpy()).resize((size, size))
        files.append(root / f"digit{i}.png")
        image.save(files[-1])
    image.convert("RGB").save(root / "digit.jpg", quality=90)
    files.append(root / "digit.jpg")
    return files
