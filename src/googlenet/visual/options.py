"""The choices the `googlenet diagram`, `explain`, `visualize` and `dream` commands offer, named
without importing torch (the CLI lists them in its help)."""

from __future__ import annotations

EXPLAIN_METHODS = ("gradcam", "gradcam++", "integrated-gradients")
DEFAULT_EXPLAIN_LAYER = "4e"  # 14x14 at 224: finer than 5b's 7x7, and still semantic
DEFAULT_FEATURE_MODULE = "4c"
DEFAULT_DREAM_LAYER = "4c"
