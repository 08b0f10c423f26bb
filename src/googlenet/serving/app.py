"""`googlenet serve`: an HTTP API and a web page for any model, on FastAPI.

    POST /v1/predict   images (multipart `files`, or one raw image body) -> top-k per image
    POST /v1/explain   one image -> a Grad-CAM overlay (PNG) for its top class (torch backend)
    GET  /v1/model     the model's artifact: variant, classes, preprocessing, backend, sha256
    GET  /healthz      alive;  GET /readyz: the model is loaded and warmed up
    GET  /metrics      Prometheus text format;  GET /docs: the OpenAPI page;  GET /: the page

This module is the transport: routes, the API key, the web page, metrics and the mapping of
errors to answers. What each endpoint does with the model is googlenet.serving.api's; how
uploads are read, googlenet.serving.uploads'. Decoding and preprocessing run in a thread pool,
the model on the batcher's thread, so the event loop only moves bytes. Nothing a client sends
is opened as a path or fetched as a URL.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import os
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any, TypeVar

import torch
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from googlenet.inference.predictor import Predictor
from googlenet.serving.api import ExplainAPI, ModelAPI, PredictAPI, model_record
from googlenet.serving.batcher import QueueFull
from googlenet.serving.connection import ConnectionLimits, GuardedH11Protocol
from googlenet.serving.errors import RETRY_AFTER, ClientError, error_body
from googlenet.serving.guard import Observer, RequestGuard
from googlenet.serving.metrics import Metrics
from googlenet.serving.uploads import read_uploads

T = TypeVar("T")

CONFIG_VARIABLE = "GOOGLENET_SERVE_CONFIG"  # how `--workers N` passes the settings to each worker
MAX_HEADER_BYTES = 16 * 1024  # a request line and header larger than this: 431 (400 when split)
DISCONNECT_POLL_S = 0.25  # how often a request waiting for the model looks for its client
STATIC = resources.files("googlenet.serving") / "static"  # the web page


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
    """What a running app holds: the model, its APIs (the predict API's batcher with it), the
    metrics."""

    def __init__(self, config: ServeConfig) -> None:
        if config.threads:
            torch.set_num_threads(config.threads)
        self.predictor = Predictor.load(config.model, backend=config.backend, device=config.device,
                                        preprocess=config.preprocess, threads=config.threads)
        self.config, self.ready, self.metrics = config, False, Metrics()
        self.predict = PredictAPI(self.predictor, top_k=config.top_k, max_batch=config.max_batch,
                                  max_wait_ms=config.max_wait_ms, max_queue=config.max_queue,
                                  on_batch=self.metrics.observe_batch)
        self.explain = ExplainAPI(self.predictor)

    def warm_up(self) -> None:
        self.predict.warm_up()
        self.ready = True


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.serving = state = State(app.state.config)
    await asyncio.get_running_loop().run_in_executor(None, state.warm_up)
    yield
    state.predict.close()


def state_of(request: Request) -> State:
    return request.app.state.serving


def check_api_key(request: Request, config: ServeConfig) -> None:
    if config.api_key is None:
        return
    given = request.headers.get("authorization", "")
    expected = f"Bearer {config.api_key}"
    if not hmac.compare_digest(given.encode(), expected.encode()):  # constant time
        raise ClientError(401, "a valid API key is required: Authorization: Bearer KEY",
                          headers={"WWW-Authenticate": "Bearer"})


async def answer(request: Request, api: ModelAPI) -> dict[str, Any]:
    """A request through `api`'s steps. The transport's own part: the key, the body within its
    limits, and the client's presence while the model works."""
    config = state_of(request).config
    check_api_key(request, config)
    options = api.parse_query(request.query_params)  # a bad query costs no upload
    uploads = await read_uploads(request, config.max_upload_mb, config.max_images)
    decoded = await api.decode_request(uploads, options)
    return api.encode_response(decoded, await while_connected(request, api.predict(decoded)))


async def while_connected(request: Request, work: Awaitable[T]) -> T:
    """`work`'s result, unless the client goes away first: then the work is cancelled (the
    batcher skips a cancelled request) and ClientDisconnect leaves it unanswered (the guard
    counts it). A request past its deadline is cancelled the same way, by the guard."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if not task.done() and await request.is_disconnected():
                raise ClientDisconnect()
        return task.result()
    finally:
        task.cancel()  # a no-op once done


router = APIRouter()


@router.post("/v1/predict", summary="top-k classes of one or more images",
             openapi_extra={"requestBody": {"content": {
                 "multipart/form-data": {"schema": {"type": "object", "properties": {
                     "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
                 "image/*": {"schema": {"type": "string", "format": "binary"}}}}})
async def predict_route(request: Request) -> dict[str, Any]:
    return await answer(request, state_of(request).predict)


@router.post("/v1/explain", summary="where the network looked: a heat-map overlay of one image",
             description="Query: `class` (name or index; default the top class), `layer` (default "
                         "4e), `method` (gradcam, gradcam++, integrated-gradients). Torch backend.",
             openapi_extra={"requestBody": {"content": {
                 "multipart/form-data": {"schema": {"type": "object", "properties": {
                     "files": {"type": "string", "format": "binary"}}}},
                 "image/*": {"schema": {"type": "string", "format": "binary"}}}}})
async def explain_route(request: Request) -> dict[str, Any]:
    return await answer(request, state_of(request).explain)


@router.get("/v1/model", summary="the model: variant, classes, preprocessing, backend, sha256")
async def model_route(request: Request) -> dict[str, Any]:
    check_api_key(request, state_of(request).config)
    return model_record(state_of(request).predictor)


@router.get("/healthz", summary="the server is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="the model is loaded and warmed up")
async def readyz(request: Request) -> Response:
    state = getattr(request.app.state, "serving", None)
    ready = state is not None and state.ready
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    state = state_of(request)
    body, content_type = state.metrics.render(state.predict.batcher.depth)
    return Response(body, media_type=content_type)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse((STATIC / "index.html").read_text())


async def refused(request: Request, error: HTTPException) -> Response:
    """Ours, and Starlette's 404 and 405: one shape."""
    return Response(error_body(str(error.detail)), status_code=error.status_code,
                    headers=getattr(error, "headers", None), media_type="application/json")


async def invalid(request: Request, error: RequestValidationError) -> Response:
    return Response(error_body(f"invalid request: {error.errors()}"), status_code=422,
                    media_type="application/json")


async def busy(request: Request, error: QueueFull) -> Response:
    return await refused(request, ClientError(503, f"the server is busy ({error}); retry shortly",
                                              headers=RETRY_AFTER))


def observer(app: FastAPI) -> Observer:
    """The request guard's report on each /v1/predict request, into the metrics."""
    def observe(path: str, status: int | None, seconds: float) -> None:
        state = getattr(app.state, "serving", None)
        if path == "/v1/predict" and state is not None:
            state.metrics.observe_request(status, seconds, state.predict.batcher.depth)

    return observe


def create_app(config: ServeConfig) -> FastAPI:
    app = FastAPI(title="googlenet", lifespan=lifespan,
                  description="GoogLeNet (Inception v1) predictions: top-k classes of images.")
    app.state.config = config
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(RequestGuard, timeout_s=config.timeout_s, observe=observer(app),
                       max_header_bytes=MAX_HEADER_BYTES)  # added last: outermost, so it sees every answer
    app.add_exception_handler(HTTPException, refused)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(QueueFull, busy)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
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
