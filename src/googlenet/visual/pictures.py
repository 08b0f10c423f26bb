"""Writing pictures: a matplotlib figure (PNG or SVG, chosen by the suffix) or a PIL image,
atomically, refusing to replace a file unless asked. Pure Python and matplotlib: no torch."""

from __future__ import annotations

from pathlib import Path

from matplotlib import rc_context
from matplotlib.figure import Figure
from PIL import Image

from googlenet.errors import ConfigError
from googlenet.runtime.files import atomic_path, check_output

FIGURE_SUFFIXES = (".png", ".svg")
DPI = 200  # sharp on a slide and on paper


def check_picture_path(path: str | Path, overwrite: bool,
                       suffixes: tuple[str, ...] = FIGURE_SUFFIXES) -> Path:
    """`path` if it names a picture format we write and replacing it is allowed."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"{path}: a picture must end in {' or '.join(suffixes)}")
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: the folder {path.parent} does not exist")
    return check_output(path, overwrite)


def save_figure(figure: Figure, path: str | Path, overwrite: bool = False) -> Path:
    """Write `figure` to `path` (.png or .svg); SVG keeps its text as text (searchable)."""
    path = check_picture_path(path, overwrite)
    kind = path.suffix.lower()[1:]
    metadata = {"Date": None} if kind == "svg" else {"Software": "googlenet"}  # same bytes each run
    with atomic_path(path) as tmp, rc_context({"svg.fonttype": "none", "svg.hashsalt": "googlenet"}):
        figure.savefig(tmp, format=kind, dpi=DPI, bbox_inches="tight", metadata=metadata)
    return path


def save_image(image: Image.Image, path: str | Path, overwrite: bool = False) -> Path:
    """Write a PIL image as PNG."""
    path = check_picture_path(path, overwrite, (".png",))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
