"""The digits model (the session's `digits_run`), loaded once for the picture tests."""

from __future__ import annotations

import pytest

from googlenet.artifact.build import model_from_artifact
from googlenet.weights.sources import load_artifact


@pytest.fixture(scope="session")
def digits_model(digits_run):
    """(model in eval mode, its artifact)."""
    artifact = load_artifact(digits_run.run_dir)
    return model_from_artifact(artifact, aux_logits=False).eval(), artifact


@pytest.fixture(scope="session")
def pasted_digits():
    """Factory: a validation digit (32x32) pasted at (x, y) on a black 64x64 canvas, and its label."""
    from PIL import Image

    from googlenet.data.digits import digits_splits

    _, val = digits_splits()

    def paste(index: int, x: int, y: int):
        digit = Image.fromarray(val.images[index].permute(1, 2, 0).numpy()).resize(
            (32, 32), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", (64, 64))
        canvas.paste(digit, (x, y))
        return canvas, int(val.labels[index])

    return paste

