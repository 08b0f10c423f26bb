"""GoogLeNet (Inception v1), Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.

The names below are imported on first use, so that `import googlenet` (and the CLI's
`summary`, `cost` and `--help`) do not import torch.

    import googlenet
    model = googlenet.googlenet(weights="imagenet")            # torchvision's weights, variant bn
    model = googlenet.googlenet(num_classes=10)                # fresh weights, variant paper
    model.classes, model.transforms(), model.artifact          # every model carries its record
    predictor = googlenet.Predictor.from_model(model)          # or Predictor.load("runs/x")
    report = googlenet.evaluate(predictor, "digits", crops=10)
    config = googlenet.with_overrides(googlenet.load_recipe("digits"), {"epochs": 5})
    result = googlenet.train(config, callbacks=[googlenet.PrintMessages(), googlenet.ProgressBar()])
    result.model.classes, result.model.artifact                # the trained model carries its record
    result = googlenet.resume(result.run_dir, overrides={"epochs": 10})  # train further
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# name -> module that defines it
EXPORTS = {
    "TABLE_1": "googlenet.arch.table", "VARIANTS": "googlenet.arch.table",
    "googlenet": "googlenet.weights.sources",
    "GoogLeNet": "googlenet.model.network", "build_model": "googlenet.artifact.build",
    "Artifact": "googlenet.artifact.record", "Preprocessing": "googlenet.data.preprocessing",
    "load_artifact": "googlenet.weights.sources", "load_model": "googlenet.weights.sources",
    "Predictor": "googlenet.inference.predictor", "evaluate": "googlenet.inference.evaluate",
    "extract_features": "googlenet.inference.features",
    "TrainConfig": "googlenet.training.config", "load_recipe": "googlenet.training.config",
    "with_overrides": "googlenet.training.config",
    "train": "googlenet.training.loop", "resume": "googlenet.training.loop",
    "Callback": "googlenet.training.callbacks", "PrintMessages": "googlenet.training.callbacks",
    "ProgressBar": "googlenet.training.callbacks",
    "export_model": "googlenet.deploy.export",
}
__all__ = [*EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in EXPORTS:
        raise AttributeError(f"module 'googlenet' has no attribute {name!r}")
    value = getattr(importlib.import_module(EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
