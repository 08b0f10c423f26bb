"""The digits model (the session's `digits_run`), loaded once for the picture tests."""

from __future__ import annotations

import pytest
from trained_checks import paste_digit

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
    return paste_digit
