"""Fixtures of the batch-job tests: a small model file, and one local Ray instance with 2 CPUs
for the session (started only by the tests that need it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_helpers import small_model


@pytest.fixture(scope="session")
def model_file(tmp_path_factory) -> Path:
    return small_model(tmp_path_factory.mktemp("batch_model") / "small.safetensors")


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance with 2 CPUs, shared by this session's batch tests; run_batch uses it
    (and leaves it running) instead of starting its own."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield ray
    ray.shutdown()
