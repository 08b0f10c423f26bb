"""`googlenet serve`: an HTTP API and a web page for any model, on FastAPI.

    POST /v1/predict   images (multipart `files`, or one raw image body) -> top-k per image
    POST /v1/explain   one image -> a Grad-CAM overlay (PNG) for its top class (torch backend)
    GET  /v1/model     the model's artifact: variant, classes, preprocessing, backend, sha256
    GET  /healthz      alive;  GET /readyz: the model is loaded and warmed up
    GET  /metrics      Prometheus text format;  GET /docs: the OpenAPI page;  GET /: the page

Decoding and preprocessing run in a thread pool, the model on the batcher's thread, so the
event loop only moves bytes. Nothing a client sends is opened as a path or fetched as a URL.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hmac
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any, TypeVar

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from googlenet.data.images import check_header, read_transformed
from googlenet.inference.predictor import Predictor
from googlenet.serving.batcher import Batcher, QueueFull
from googlenet.serving.connection import ConnectionLimits, GuardedH11Protocol
from googlenet.serving.errors import RETRY_AFTER, ClientError, error_body
from googlenet.serving.guard import RequestGuard
from googlenet.serving.metrics import Metrics

T = TypeVar("T")

MB = 1 << 20
CONFIG_VARIABLE = "GOOGLENET_SERVE_CONFIG"  # how `--workers N` passes the settings to each worker
MAX_HEADER_BYTES = 16 * 1024  # a request line and header larger than this: 431 (400 when split)
CLOSE = {"Connection": "close"}  # the rest of the body is not read: the connection cannot go on


@dataclass(frozen=True)
class ServeConfig:
    model: str
    backend: str = "auto"
    device: str = "auto"
    preprocess: str | None = None
    threads: int | None = None
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256  # requests waiting for the model; more get 503 at once
    timeout_s: float = 30.0  # from a request's first byte: 408 if not all received by then, else 504
    header_timeout_s: float = 10.0  # from a request's first byte (or the connection's opening) to its header
    max_connections: int = 512  # open connections; more are answered 503 at once
    stop_timeout_s: float = 10.0  # on SIGTERM, what is in flight gets this long to finish
    max_upload_mb: float = 20.0
    max_images: int = 32  # per request
    top_k: int = 5
    api_key: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        values = json.loads(text)
        values["cors_origins"] = tuple(values.get("cors_origins") or ())
        return cls(**values)


class State:
    """What the app holds: the predictor, its batcher and thread pool, the metrics."""

    def __init__(self, config: ServeConfig) -> None:
        self.config, self.ready = config, False
        self.metrics = Metrics()
        if config.threads:
            torch.set_num_threads(config.threads)
        self.predictor = Predictor.load(config.model, backend=config.backend, device=config.device,
                                        preprocess=config.preprocess, threads=config.threads)
        self.transform = self.predictor.transform(1)
        self.batcher = Batcher(self.probabilities, config.max_batch, config.max_wait_ms,
                               config.max_queue, self.metrics.observe_batch)
        self.explainer_lock = threading.Lock()
        self._explainer: Any = None  # googlenet.visual.explain.Explainer, made on first use

    def explainer(self) -> Any:
        """Grad-CAM and friends on a copy of the torch model (`pip install 'googlenet[explain]'`)."""
        from googlenet.visual.explain import Explainer

        with self.explainer_lock:
            if self._explainer is None:
                artifact = self.predictor.artifact
                self._explainer = Explainer(self.predictor.backend.model, artifact.classes,
                                            artifact.preprocessing)
            return self._explainer

    def probabilities(self, views: torch.Tensor) -> torch.Tensor:
        return self.predictor.crop_scores(views, [1])[0]

    def warm_up(self) -> None:
        size = self.predictor.preprocessing.input_size
        self.probabilities(torch.zeros(1, 1, 3, size, size))
        self.ready = True

    def model_record(self) -> dict[str, Any]:
        artifact = self.predictor.artifact
        return {"id": model_id(artifact.source), "source": artifact.source, "variant": artifact.variant,
                "num_classes": artifact.num_classes, "classes": list(artifact.classes),
                "preprocessing": artifact.preprocessing.to_dict(), "backend": self.predictor.backend.name,
                "sha256": artifact.provenance.sha256}


def model_id(source: str) -> str:
    name = os.path.basename(source.rstrip("/"))
    parent = os.path.basename(os.path.dirname(source.rstrip("/")))
    return parent if name in ("best.pt", "last.pt") and parent else name or source


def check_api_key(request: Request, config: ServeConfig) -> None:
    if config.api_key is None:
        return
    given = request.headers.get("authorization", "")
    expected = f"Bearer {config.api_key}"
    if not hmac.compare_digest(given.encode(), expected.encode()):  # constant time
        raise ClientError(401, "a valid API key is required: Authorization: Bearer KEY",
                          headers={"WWW-Authenticate": "Bearer"})


async def read_body(request: Request, limit_mb: float) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit_mb` (never read whole)."""
    limit = int(limit_mb * MB)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ClientError(413, f"upload of {int(declared) / MB:.2f} MB is over the "
                               f"{limit_mb:g} MB limit", headers=CLOSE)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ClientError(413, f"upload is over the {limit_mb:g} MB limit", headers=CLOSE)
        chunks.append(chunk)
    return b"".join(chunks)


async def uploaded_images(request: Request, config: ServeConfig) -> list[tuple[str, bytes]]:
    """(name, bytes) of each image: multipart `files` fields, or one raw image body."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = kind.startswith("image/") or kind == "application/octet-stream"  # the bytes are sniffed
    if kind != "multipart/form-data" and not raw:
        raise ClientError(415, f"content type {kind or 'none'} is not accepted: send images as "
                               "multipart/form-data (field `files`) or one image body (image/* or "
                               "application/octet-stream)")
    body = await read_body(request, config.max_upload_mb)
    if kind != "multipart/form-data":
        return [("image", body)]

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=config.max_images + 1,
                                                         max_fields=config.max_images + 8)
    except Exception as error:
        reason = str(getattr(error, "detail", error))
        if reason.startswith("Too many files"):
            raise too_many(config) from None
        if reason.startswith("Too many fields"):
            raise ClientError(413, f"more than {config.max_images + 8} form fields in one request") from None
        raise ClientError(422, f"malformed multipart body: {reason}") from None
    files = [value for key, value in form.multi_items() if key == "files" and isinstance(value, UploadFile)]
    if len(files) > config.max_images:
        raise too_many(config)
    return [(file.filename or f"file{i}", await file.read()) for i, file in enumerate(files)]


def too_many(config: ServeConfig) -> ClientError:
    return ClientError(413, f"more than {config.max_images} images in one request")


def decode_upload(name: str, data: bytes, transform: Callable[[Image.Image], T]) -> T:
    """An uploaded file through `transform`; 422 naming it when it is not a usable image. The
    data path's bounded decode: the shape checked from the header, large JPEGs decoded at
    reduced scale when the transform allows, memory given back after a large image."""
    def read() -> bytes:
        check_header(data[:16])
        return data

    result, reason = read_transformed(read, transform)
    if result is None:
        raise ClientError(422, f"{name}: {reason}")
    return result


def decode_one(state: State, name: str, data: bytes) -> torch.Tensor:
    """An uploaded file as the model's views (1 x 3 x S x S)."""
    return decode_upload(name, data, state.transform)


def decode_all(state: State, images: list[tuple[str, bytes]]) -> torch.Tensor:
    """N x 1 x 3 x S x S views; 422 naming the first file that is not a usable image."""
    return torch.stack([decode_one(state, name, data) for name, data in images])


async def predict(request: Request, state: State) -> dict[str, Any]:
    config = state.config
    check_api_key(request, config)
    start = time.perf_counter()
    top_k = parse_top_k(request.query_params.get("top_k"), config.top_k)
    images = await uploaded_images(request, config)
    if not images:
        raise ClientError(422, "no images: send at least one file in the field `files`")
    loop = asyncio.get_running_loop()
    state.batcher.decode_started()
    try:
        views = await loop.run_in_executor(None, decode_all, state, images)
    finally:
        state.batcher.decode_finished()
    decoded = time.perf_counter()
    probabilities = await wait_for_batch(request, state, views)
    done = time.perf_counter()
    predictions = state.predictor.top(probabilities, top_k, [name for name, _ in images])
    return {"model": model_id(state.predictor.name),
            "predictions": [{"file": p.file, "top": [{"class": c, "probability": q}
                                                     for c, q in zip(p.classes, p.probabilities)]}
                            for p in predictions],
            "timings": {"decode_ms": 1000 * (decoded - start), "model_ms": 1000 * (done - decoded),
                        "total_ms": 1000 * (done - start)}}


async def explain_image(request: Request, state: State) -> dict[str, Any]:
    """One image's heat map over the view the model saw, as a PNG data URL, with its class."""
    from googlenet.visual.options import DEFAULT_EXPLAIN_LAYER, EXPLAIN_METHODS

    check_api_key(request, state.config)
    backend = state.predictor.backend.name
    if backend != "torch":
        raise ClientError(501, f"explanations need the torch backend; this server runs {backend}")
    query = request.query_params
    method = query.get("method", "gradcam")
    if method not in EXPLAIN_METHODS:
        raise ClientError(422, f"method must be one of {', '.join(EXPLAIN_METHODS)}, got {method!r}")
    images = await uploaded_images(request, state.config)
    if len(images) != 1:
        raise ClientError(422, f"send one image to explain, not {len(images)}")

    def run() -> dict[str, Any]:
        from googlenet.errors import ConfigError
        from googlenet.visual.explain import overlay_png

        try:
            explainer = state.explainer()
        except ConfigError as error:  # Captum is not installed
            raise ClientError(501, str(error)) from None
        try:
            result = explainer(decode_upload(*images[0], lambda image: image), query.get("class"),
                               query.get("layer", DEFAULT_EXPLAIN_LAYER), method)
        except ValueError as error:  # an unknown layer or class, named with the choices
            raise ClientError(422, str(error)) from None
        return {"file": images[0][0], "class": result.class_name, "probability": result.probability,
                "layer": result.layer, "method": result.method,
                "overlay": "data:image/png;base64," + base64.b64encode(overlay_png(result)).decode()}

    return await asyncio.get_running_loop().run_in_executor(None, run)


def parse_top_k(text: str | None, default: int) -> int:
    try:
        value = default if text is None else int(text)
    except ValueError:
        raise ClientError(422, f"top_k must be a positive integer, got {text!r}") from None
    if value < 1:
        raise ClientError(422, f"top_k must be a positive integer, got {value}")
    return value


async def wait_for_batch(request: Request, state: State, views: torch.Tensor) -> torch.Tensor:
    """The batcher's answer; 503 when its queue is full. A client that disconnects, or a
    request past its deadline (googlenet.serving.guard cancels it), gives up its place: the
    batcher skips a cancelled request."""
    answer = asyncio.ensure_future(state.batcher.submit(views))
    try:
        while not answer.done():
            await asyncio.wait({answer}, timeout=0.25)
            if not answer.done() and await request.is_disconnected():
                raise ClientError(499, "the client went away")
        return answer.result()
    except QueueFull as error:
        raise ClientError(503, f"the server is busy ({error}); retry shortly",
                          headers=RETRY_AFTER) from None
    finally:
        answer.cancel()  # a no-op once answered


def create_app(config: ServeConfig) -> FastAPI:
    state_box: dict[str, State] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = State(config)
        state_box["state"] = state
        await asyncio.get_running_loop().run_in_executor(None, state.warm_up)
        yield
        state.batcher.close()

    app = FastAPI(title="googlenet", lifespan=lifespan,
                  description="GoogLeNet (Inception v1) predictions: top-k classes of images.")
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])

    def current() -> State:
        return state_box["state"]

    @app.exception_handler(HTTPException)  # ours, and Starlette's 404 and 405: one shape
    async def refused(request: Request, error: HTTPException) -> Response:
        return Response(error_body(str(error.detail)), status_code=error.status_code,
                        headers=getattr(error, "headers", None), media_type="application/json")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        return Response(error_body(f"invalid request: {error.errors()}"), status_code=422,
                        media_type="application/json")

    def observe(path: str, status: int, seconds: float) -> None:
        if path == "/v1/predict" and "state" in state_box:
            current().metrics.observe_request(status, seconds, current().batcher.depth)

    app.add_middleware(RequestGuard, timeout_s=config.timeout_s, observe=observe,
                       max_header_bytes=MAX_HEADER_BYTES)

    @app.post("/v1/predict", summary="top-k classes of one or more images",
              openapi_extra={"requestBody": {"content": {
                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                      "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
                  "image/*": {"schema": {"type": "string", "format": "binary"}}}}})
    async def predict_route(request: Request) -> dict[str, Any]:
        return await predict(request, current())

    @app.post("/v1/explain", summary="where the network looked: a heat-map overlay of one image",
              description="Query: `class` (name or index; default the top class), `layer` (default "
                          "4e), `method` (gradcam, gradcam++, integrated-gradients). Torch backend.",
              openapi_extra={"requestBody": {"content": {
                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                      "files": {"type": "string", "format": "binary"}}}},
                  "image/*": {"schema": {"type": "string", "format": "binary"}}}}})
    async def explain_route(request: Request) -> dict[str, Any]:
        return await explain_image(request, current())

    @app.get("/v1/model", summary="the model: variant, classes, preprocessing, backend, sha256")
    async def model_route(request: Request) -> dict[str, Any]:
        check_api_key(request, config)
        return current().model_record()

    @app.get("/healthz", summary="the server is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="the model is loaded and warmed up")
    async def readyz() -> Response:
        ready = "state" in state_box and current().ready
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        body, content_type = current().metrics.render(current().batcher.depth)
        return Response(body, media_type=content_type)

    static = resources.files("googlenet.serving") / "static"

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((static / "index.html").read_text())

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    return app


def uvicorn_options(config: ServeConfig) -> dict[str, Any]:
    """uvicorn's settings for `config`: the guarded connections, its keep-alive and header
    size limits, and the graceful stop's deadline."""
    limits = ConnectionLimits(config.header_timeout_s, config.max_connections)
    return {"http": functools.partial(GuardedH11Protocol, limits=limits), "timeout_keep_alive": 5,
            "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
            "timeout_graceful_shutdown": config.stop_timeout_s}


def app_from_environment() -> FastAPI:
    """The app of one of `--workers N` processes, configured through CONFIG_VARIABLE."""
    return create_app(ServeConfig.from_json(os.environ[CONFIG_VARIABLE]))
