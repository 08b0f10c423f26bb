"""The optional extras of pyproject.toml: which modules each provides, and one error, naming the
`pip install` line, when a command needs one that is not installed (pure Python, no torch)."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from googlenet.errors import MissingExtra

# extra -> the modules it installs that the code imports (pyproject.toml's optional-dependencies)
EXTRAS: dict[str, tuple[str, ...]] = {
    "parquet": ("pyarrow",),
    "openvino": ("openvino", "nncf"),
    "serve": ("fastapi", "uvicorn", "prometheus_client", "multipart"),
    "detect": ("cv2", "pycocotools"),
    "explain": ("captum",),
    "ray": ("pandas", "ray"),  # ray[data]: pandas and pyarrow (the parquet extra's) come with it
}


def installed(module: str) -> bool:
    """`module` can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing; a module set to None
        return False


def missing(extra: str) -> list[str]:
    """The modules of `extra` that cannot be imported."""
    return [module for module in EXTRAS[extra] if not installed(module)]


def require_extra(extra: str, purpose: str) -> None:
    """MissingExtra, before any work, when a module of `extra` is not installed."""
    if absent := missing(extra):
        raise MissingExtra(f"{purpose} needs {', '.join(absent)}: pip install 'googlenet[{extra}]'")


def import_extra(module: str, extra: str, purpose: str) -> ModuleType:
    """`module`, imported; MissingExtra naming the `pip install` line when it cannot be."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{purpose} needs {module.split('.')[0]}: "
                           f"pip install 'googlenet[{extra}]'") from None
