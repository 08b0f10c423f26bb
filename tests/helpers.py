"""Small image trees for the data tests (helpers only, imported by tests/test_data_*.py)."""

from __future__ import annotations

import io
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

SHARED_DATA = Path(__file__).parents[2] / "shared/data"


def colour(label: int, index: int) -> tuple[int, int, int]:
    return (40 * label + 20, 30 * index + 10, 200 - 25 * label)


def write_image(path: Path, label: int = 0, index: int = 0, size: tuple[int, int] = (20, 16),
                mode: str = "RGB") -> Path:
    """A small image with a gradient, so crops and flips change it; format from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour(label, index))
    for x in range(size[0]):
        image.putpixel((x, 0), (6 * x % 256, 255 - 6 * x % 256, 128))
    image.convert(mode).save(path)
    return path


def write_tree(root: Path, classes: dict[str, int] | None = None, size: tuple[int, int] = (20, 16),
               suffix: str = ".png") -> Path:
    """root/<class>/<i>.png for each class and count; returns root."""
    for label, (name, count) in enumerate((classes or {"cat": 3, "dog": 3}).items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            write_image(root / name / f"{i:03d}{suffix}", label, i, size)
    return root


def write_split_tree(root: Path, val_name: str = "val", **kwargs) -> Path:
    write_tree(root / "train", **kwargs)
    write_tree(root / val_name, **kwargs)
    return root


def pack(source: Path, archive: Path, arcname: str, mode: str = "w") -> Path:
    """A tar archive of source stored under arcname (mode "w:gz" for a .tar.gz)."""
    with tarfile.open(archive, mode) as tar:
        tar.add(source, arcname=arcname)
    return archive


def jpeg_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buffer, "JPEG")
    return buffer.getvalue()


class Messages:
    """A training callback that keeps the messages (googlenet.training.callbacks.Callback's hooks)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def on_message(self, message: str) -> None:
        self.lines.append(message)

    def on_epoch_start(self, *args) -> None:
        pass

    def on_batch(self, *args) -> None:
        pass

    def on_epoch_end(self, record) -> None:
        pass


@contextmanager
def running(config) -> Iterator[str]:
    """The base URL of a real server (uvicorn on a free loopback port, in a thread) for a
    googlenet.serving.app.ServeConfig, ready: its model loaded and warmed up."""
    with running_server(config) as (url, _):
        yield url


@contextmanager
def running_server(config) -> Iterator[tuple[str, object]]:
    """`running`, with its uvicorn.Server too (set `should_exit` to stop it as SIGTERM would)."""
    import httpx
    import uvicorn

    from googlenet.serving.app import create_app, uvicorn_options

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port,
                                           log_level="error", **uvicorn_options(config)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    else:
        raise RuntimeError("the server did not become ready")
    try:
        yield url, server
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def slow_model(monkeypatch, seconds: float) -> None:
    """Every forward pass of the servers started after this takes `seconds` longer (on the
    batcher's thread, so that requests queue up behind it)."""
    from googlenet.serving.api import PredictAPI

    original = PredictAPI.forward

    def slow(self, views):
        time.sleep(seconds)
        return original(self, views)

    monkeypatch.setattr(PredictAPI, "forward", slow)
