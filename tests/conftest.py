"""Session fixtures shared by the test folders (tests/ mirrors the packages of src/googlenet).

Expensive things are made once per session: a model trained on the built-in digits by the
library's own `train`, and small models of both variants with a non-default input size,
class list and normalisation (the artifact round trips).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from torch import nn
from trained_checks import DIGITS_RUN

from googlenet import build_model
from googlenet.artifact.build import model_from_artifact
from googlenet.artifact.record import Artifact, Provenance
from googlenet.data.preprocessing import Preprocessing
from googlenet.training.config import load_recipe, with_overrides
from googlenet.training.loop import TrainResult, train
from googlenet.weights.sources import load_artifact

VARIANTS = ("bn", "paper")


def pytest_configure(config) -> None:
    """Under pytest-xdist, each worker takes its share of the cores unless OMP_NUM_THREADS says
    otherwise: two processes that each use both cores slow each other down many times over."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, len(os.sched_getaffinity(0)) // int(workers))
        os.environ["OMP_NUM_THREADS"] = str(threads)  # for the CLI and server processes too
        torch.set_num_threads(threads)


def _train_digits(run: Path) -> TrainResult:
    config = with_overrides(load_recipe("digits"), {**DIGITS_RUN, "output": str(run)})
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return train(config)
    finally:
        torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> TrainResult:
    """The bn variant trained for four epochs on digits (far above chance): its run directory
    holds last.pt and best.pt. Settings in trained_checks.DIGITS_RUN: fp32, a fixed thread count
    and deterministic algorithms, the same model whatever OMP_NUM_THREADS the suite runs with."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _train_digits(tmp_path_factory.mktemp("digits_run") / "run")
    # pytest-xdist's workers share one run: the first to ask trains it, the others read it
    shared = tmp_path_factory.getbasetemp().parent / "digits_run"
    record = shared / "result.json"
    with FileLock(f"{shared}.lock"):
        if not record.exists():
            result = _train_digits(shared / "run")
            fields = {k: v for k, v in vars(result).items() if k != "model"}
            record.write_text(json.dumps({**fields, "run_dir": str(result.run_dir)}))
    fields = json.loads(record.read_text())
    run_dir = Path(fields.pop("run_dir"))
    model = model_from_artifact(load_artifact(run_dir / "last.pt"), aux_logits=False)
    return TrainResult(run_dir=run_dir, model=model, **fields)


def randomize_batch_norm(model: nn.Module, seed: int = 1) -> None:
    """Non-trivial running statistics and affine parameters, so that folding is really tested."""
    g = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
            module.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)


# Nothing here is a default: the case that failed before artifacts had one schema.
ODD_PREPROCESSING = Preprocessing(input_size=40, crop_ratio=0.8, mean=(0.3, 0.4, 0.5),
                                  std=(0.2, 0.25, 0.3))
ODD_CLASSES = ("cat", "dog", "bird")


@pytest.fixture(scope="session", params=VARIANTS)
def odd_artifact(request) -> Artifact:
    """A model of each variant with 3 named classes, input 40 and its own mean and std."""
    torch.manual_seed(0)
    model = build_model(request.param, num_classes=len(ODD_CLASSES), aux_logits=False)
    randomize_batch_norm(model)
    return Artifact(request.param, ODD_CLASSES, ODD_PREPROCESSING,
                    provenance=Provenance(source="odd", config=None),
                    state_dict=model.state_dict())


@pytest.fixture(scope="session")
def odd_images(tmp_path_factory) -> list[Path]:
    """Three photographs-like files of different sizes and modes."""
    from PIL import Image

    root = tmp_path_factory.mktemp("odd_images")
    files = []
    for i, (size, mode) in enumerate((((64, 48), "RGB"), ((50, 80), "L"), ((41, 41), "RGBA"))):
        image = Image.effect_noise(size, 40 + 20 * i).convert(mode)
        files.append(root / f"{i}.png")
        image.save(files[-1])
    return files


@pytest.fixture
def one_thread(monkeypatch):
    """One intra-op thread (for ONNX Runtime tests): two spinning runtimes slow each other down.
    OMP_NUM_THREADS too, which the CLI's thread policy respects."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(threads)

