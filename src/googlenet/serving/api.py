"""The served models' side of each endpoint, apart from HTTP (after LitServe's `LitAPI`).

Each API answers a request in four steps, and the transport (googlenet.serving.app) only
calls them in order:

    parse_query(query)              -> options, checked before the body is read
    await decode_request(uploads, options) -> the model's input (decoded in the thread pool)
    await predict(input)            -> the model's output (PredictAPI: through the batcher)
    encode_response(input, output)  -> the JSON answer

A step refuses a request by raising ClientError (a status and a message naming the
problem); none sees a Starlette request, so each runs without a server (tests, a new protocol).
"""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import torch
from PIL import Image
from torch import Tensor

from googlenet.artifact import rundir
from googlenet.data.images import check_header, read_transformed
from googlenet.inference.predictor import Predictor
from googlenet.serving.batcher import Batcher
from googlenet.serving.errors import ClientError
from googlenet.serving.uploads import Upload

if TYPE_CHECKING:
    from googlenet.visual.explain import Explainer, Explanation

T = TypeVar("T")


class ModelAPI(Protocol):
    """What the transport calls; `Any` because each API has its own options, input and output."""

    def parse_query(self, query: Mapping[str, str]) -> Any: ...

    async def decode_request(self, uploads: Sequence[Upload], options: Any) -> Any: ...

    async def predict(self, decoded: Any) -> Any: ...

    def encode_response(self, decoded: Any, output: Any) -> dict[str, Any]: ...


def decode_upload(upload: Upload, transform: Callable[[Image.Image], T]) -> T:
    """An uploaded file through `transform`; 422 naming it when it is not a usable image. The
    data path's bounded decode: the shape checked from the header, large JPEGs decoded at
    reduced scale when the transform allows, memory given back after a large image."""
    def read() -> bytes:
        check_header(upload.data[:16])
        return upload.data

    result, reason = read_transformed(read, transform)
    if result is None:
        raise ClientError(422, f"{upload.name}: {reason}")
    return result


def model_id(source: str) -> str:
    """A short name for answers: a run's folder rather than its best.pt, else the file's name."""
    name = os.path.basename(source.rstrip("/"))
    parent = os.path.basename(os.path.dirname(source.rstrip("/")))
    return parent if rundir.is_checkpoint_name(name) and parent else name or source


def model_record(predictor: Predictor) -> dict[str, Any]:
    """GET /v1/model: what is served, from the model's record."""
    artifact = predictor.artifact
    return {"id": model_id(artifact.source), "source": artifact.source, "variant": artifact.variant,
            "num_classes": artifact.num_classes, "classes": list(artifact.classes),
            "preprocessing": artifact.preprocessing.to_dict(), "backend": predictor.backend.name,
            "sha256": artifact.provenance.sha256}


def parse_top_k(text: str | None, default: int) -> int:
    try:
        value = default if text is None else int(text)
    except ValueError:
        raise ClientError(422, f"top_k must be a positive integer, got {text!r}") from None
    if value < 1:
        raise ClientError(422, f"top_k must be a positive integer, got {value}")
    return value


@dataclass(frozen=True)
class PredictOptions:
    top_k: int
    # the request's clock starts when its query is read, before the upload: decode_ms counts both
    started: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class PredictInput:
    files: list[str]
    views: Tensor  # N x 1 x 3 x S x S
    options: PredictOptions
    decoded: float  # perf_counter() when decoding ended


class PredictAPI:
    """POST /v1/predict: images -> top-k classes each. Requests that arrive close together run
    as one forward pass (googlenet.serving.batcher), on the batcher's thread."""

    def __init__(self, predictor: Predictor, *, top_k: int = 5, max_batch: int = 32,
                 max_wait_ms: float = 5.0, max_queue: int = 256,
                 on_batch: Callable[[int, float], None] | None = None) -> None:
        self.predictor, self.top_k = predictor, top_k
        self.transform = predictor.transform(1)
        self.batcher = Batcher(self.forward, max_batch, max_wait_ms, max_queue, on_batch)

    def forward(self, views: Tensor) -> Tensor:
        """One batch, N x 1 x 3 x S x S -> N x C probabilities (on the batcher's thread)."""
        return self.predictor.crop_scores(views, [1])[0]

    def warm_up(self) -> None:
        size = self.predictor.preprocessing.input_size
        self.forward(torch.zeros(1, 1, 3, size, size))

    def close(self) -> None:
        self.batcher.close()

    def parse_query(self, query: Mapping[str, str]) -> PredictOptions:
        return PredictOptions(parse_top_k(query.get("top_k"), self.top_k))

    async def decode_request(self, uploads: Sequence[Upload], options: PredictOptions) -> PredictInput:
        """422 when there is no image, or naming the first that is not a usable one."""
        if not uploads:
            raise ClientError(422, "no images: send at least one file in the field `files`")
        self.batcher.decode_started()  # a batch about to run waits a little for this request
        try:
            views = await asyncio.get_running_loop().run_in_executor(None, self.decode_all, uploads)
        finally:
            self.batcher.decode_finished()
        return PredictInput([upload.name for upload in uploads], views, options, time.perf_counter())

    def decode_all(self, uploads: Sequence[Upload]) -> Tensor:
        return torch.stack([decode_upload(upload, self.transform) for upload in uploads])

    async def predict(self, decoded: PredictInput) -> Tensor:
        """N x C probabilities; QueueFull when too many requests wait. Cancelling the call gives
        up the request's place: the batcher skips it."""
        return await self.batcher.submit(decoded.views)

    def encode_response(self, decoded: PredictInput, probabilities: Tensor) -> dict[str, Any]:
        done, started = time.perf_counter(), decoded.options.started
        predictions = self.predictor.top(probabilities, decoded.options.top_k, decoded.files)
        return {"model": model_id(self.predictor.name),
                "predictions": [{"file": p.file, "top": [{"class": c, "probability": q}
                                                         for c, q in zip(p.classes, p.probabilities)]}
                                for p in predictions],
                "timings": {"decode_ms": 1000 * (decoded.decoded - started),
                            "model_ms": 1000 * (done - decoded.decoded), "total_ms": 1000 * (done - started)}}


@dataclass(frozen=True)
class ExplainOptions:
    target: str | None  # a class name or index; None: the top class
    layer: str
    method: str


@dataclass(frozen=True)
class ExplainInput:
    file: str
    image: Image.Image
    options: ExplainOptions


class ExplainAPI:
    """POST /v1/explain: one image -> a heat map of where the network looked for a class, drawn
    over the view the model saw (torch backend, `pip install 'googlenet[explain]'`). It runs on
    its own copy of the model, made on first use, so predictions never wait for it."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.lock = threading.Lock()
        self._explainer: Explainer | None = None

    def explainer(self) -> Explainer:
        from googlenet.errors import ConfigError
        from googlenet.visual.explain import Explainer

        with self.lock:
            if self._explainer is None:
                artifact = self.predictor.artifact
                try:
                    self._explainer = Explainer(self.predictor.backend.model, artifact.classes,
                                                artifact.preprocessing)
                except ConfigError as error:  # Captum is not installed
                    raise ClientError(501, str(error)) from None
            return self._explainer

    def parse_query(self, query: Mapping[str, str]) -> ExplainOptions:
        from googlenet.visual.options import DEFAULT_EXPLAIN_LAYER, EXPLAIN_METHODS

        backend = self.predictor.backend.name
        if backend != "torch":
            raise ClientError(501, f"explanations need the torch backend; this server runs {backend}")
        method = query.get("method", "gradcam")
        if method not in EXPLAIN_METHODS:
            raise ClientError(422, f"method must be one of {', '.join(EXPLAIN_METHODS)}, got {method!r}")
        return ExplainOptions(query.get("class"), query.get("layer", DEFAULT_EXPLAIN_LAYER), method)

    async def decode_request(self, uploads: Sequence[Upload], options: ExplainOptions) -> ExplainInput:
        if len(uploads) != 1:
            raise ClientError(422, f"send one image to explain, not {len(uploads)}")
        image = await asyncio.get_running_loop().run_in_executor(
            None, decode_upload, uploads[0], lambda image: image)  # the explainer makes its own view
        return ExplainInput(uploads[0].name, image, options)

    async def predict(self, decoded: ExplainInput) -> tuple[Explanation, bytes]:
        """The explanation and its overlay as PNG, both drawn in the thread pool."""
        return await asyncio.get_running_loop().run_in_executor(None, self.explain, decoded)

    def explain(self, decoded: ExplainInput) -> tuple[Explanation, bytes]:
        from googlenet.visual.explain import overlay_png

        options = decoded.options
        try:
            result = self.explainer()(decoded.image, options.target, options.layer, options.method)
        except ValueError as error:  # an unknown layer or class, named with the choices
            raise ClientError(422, str(error)) from None
        return result, overlay_png(result)

    def encode_response(self, decoded: ExplainInput, output: tuple[Explanation, bytes]) -> dict[str, Any]:
        result, png = output
        return {"file": decoded.file, "class": result.class_name, "probability": result.probability,
                "layer": result.layer, "method": result.method,
                "overlay": "data:image/png;base64," + base64.b64encode(png).decode()}
