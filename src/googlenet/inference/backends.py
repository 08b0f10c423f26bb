"""Backends: what turns a batch of preprocessed images into logits.

    torch        a GoogLeNet built from the artifact's weights (any device)
    onnxruntime  an exported .onnx (fp32 or int8), on ONNX Runtime's CPU provider
    openvino     an OpenVINO IR (.xml + .bin, fp32 or int8) or an .onnx, on OpenVINO's CPU plugin
    torchscript  an exported TorchScript file

Each is a callable `N x 3 x H x W float tensor -> N x C logits` (a CPU float tensor for
the file backends). `open_backend` picks one for an artifact.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from googlenet.artifact.build import model_from_artifact
from googlenet.artifact.record import Artifact
from googlenet.errors import ModelSourceError, NotFound
from googlenet.extras import installed, require_extra
from googlenet.inference.options import BACKENDS
from googlenet.runtime import openvino as openvino_runtime


class Backend(Protocol):
    name: str
    device: torch.device

    def __call__(self, images: Tensor) -> Tensor: ...


class TorchBackend:
    name = "torch"

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.device = device
        self.model = model.to(device, memory_format=torch.channels_last).eval()

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        return self.model(images.to(self.device).contiguous(memory_format=torch.channels_last))


def session_options(threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()  # torch's: all cores by default
    options.inter_op_num_threads = 1  # one chain of convolutions: parallelism is inside the ops
    return options


def in_chunks(run: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
              fixed_batch: int | None) -> np.ndarray:
    """`run` on `images`; a graph with a fixed batch size is fed in chunks of that size (the
    last chunk padded), so any batch works."""
    if fixed_batch is None:
        return run(images)
    chunks = []
    for start in range(0, len(images), fixed_batch):
        chunk = images[start:start + fixed_batch]
        pad = fixed_batch - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
        chunks.append(run(chunk)[:fixed_batch - pad])
    return np.concatenate(chunks)


class OnnxBackend:
    """ONNX Runtime's CPU provider."""

    name = "onnxruntime"
    device = torch.device("cpu")

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise NotFound(f"ONNX model {self.path} does not exist")
        try:
            self.session = ort.InferenceSession(str(self.path), session_options(threads),
                                                providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            raise ModelSourceError(f"{self.path} is not a readable ONNX model: {error}") from None
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.fixed_batch = first.shape[0] if isinstance(first.shape[0], int) else None

    def run_numpy(self, images: np.ndarray) -> np.ndarray:
        return in_chunks(lambda x: self.session.run(None, {self.input_name: x})[0], images,
                         self.fixed_batch)

    def __call__(self, images: Tensor) -> Tensor:
        return torch.from_numpy(self.run_numpy(as_array(images)))


def as_array(images: Tensor) -> np.ndarray:
    return np.ascontiguousarray(images.detach().cpu().float().numpy())  # any memory format in


def openvino_config(threads: int | None = None, precision: str = "f32") -> dict[str, object]:
    """What we set on OpenVINO's CPU plugin, and why.

    LATENCY: one stream using every thread, because callers (the bench, the server's batcher,
    evaluate) send one batch at a time; THROUGHPUT's several streams only pay with several
    requests in flight. f32: OpenVINO's default on CPUs with bf16 (AVX-512 BF16, AMX) is to run
    fp32 layers in bf16, which would not match PyTorch within the export tolerance; int8
    models are unaffected in their int8 layers. Threads: torch's count (all cores) unless set.
    """
    return {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
            "INFERENCE_PRECISION_HINT": precision}


class OpenVinoBackend:
    """OpenVINO's CPU plugin, on an IR (.xml next to its .bin) or an .onnx file."""

    name = "openvino"
    device = torch.device("cpu")

    def __init__(self, path: str | Path, threads: int | None = None, precision: str = "f32") -> None:
        require_extra("openvino", "the openvino backend")
        self.path = Path(path)
        if not self.path.is_file():
            raise NotFound(f"model {self.path} does not exist")
        try:
            model = openvino_runtime.core().read_model(str(self.path))
            self.compiled = openvino_runtime.compile_model(model, openvino_config(threads, precision))
        except Exception as error:  # OpenVINO raises RuntimeError with its own text for bad files
            raise ModelSourceError(f"{self.path} is not a model OpenVINO can run: {error}") from None
        self.request = self.compiled.create_infer_request()
        shape = model.inputs[0].get_partial_shape()[0]
        self.fixed_batch = shape.get_length() if shape.is_static else None

    def run_numpy(self, images: np.ndarray) -> np.ndarray:
        # The request reuses its output buffer on the next call: copy it out.
        return in_chunks(lambda x: self.request.infer({0: x})[0].copy(), images, self.fixed_batch)

    def __call__(self, images: Tensor) -> Tensor:
        return torch.from_numpy(self.run_numpy(as_array(images)))


class TorchScriptBackend:
    name = "torchscript"
    device = torch.device("cpu")

    def __init__(self, path: str | Path) -> None:
        import warnings

        with warnings.catch_warnings():  # torch.jit's deprecation notice, not the user's concern
            warnings.simplefilter("ignore", FutureWarning)
            self.module = torch.jit.load(str(path), map_location="cpu").eval()

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        return self.module(images.cpu().float().contiguous())


def runs_on(artifact: Artifact) -> tuple[str, ...]:
    """The backends that can run `artifact`, the automatic choice first.

    Weights run on torch; an OpenVINO IR on openvino; TorchScript on torchscript. An .onnx
    file runs on ONNX Runtime and on OpenVINO; the choice is the faster for its precision,
    measured side by side on the same files (benchmarks/auto_backend.py, results/auto_backend.md):
    fp32 ONNX Runtime, int8 (QDQ) OpenVINO. Whichever is installed when only one is.
    """
    if artifact.state_dict is not None:
        return ("torch",)
    suffix = Path(artifact.source).suffix.lower()
    if suffix == ".xml":
        return ("openvino",)
    if suffix == ".onnx":
        order = ("openvino", "onnxruntime") if is_quantized_onnx(artifact.source) else (
            "onnxruntime", "openvino")
        return tuple(sorted(order, key=lambda name: not installed(name)))  # stable: installed first
    return ("torchscript",)


def is_quantized_onnx(path: str | Path) -> bool:
    """Whether an .onnx graph is int8 (QDQ or QOperator nodes)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(node.op_type in ("QuantizeLinear", "QLinearConv", "ConvInteger") for node in graph.node)


def open_backend(artifact: Artifact, backend: str = "auto", device: torch.device | None = None,
                 threads: int | None = None) -> Backend:
    """The backend `backend` for `artifact` ('auto': the first of `runs_on`)."""
    if backend not in BACKENDS:
        raise ModelSourceError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    kinds = runs_on(artifact)
    kind = kinds[0] if backend == "auto" else backend
    if kind not in kinds:
        hint = ("export it with googlenet export" if kinds == ("torch",)
                else "its weights are inside the exported graph")
        raise ModelSourceError(f"{artifact.source} runs on the {' or '.join(kinds)} backend, "
                               f"not {backend} ({hint})")
    if kind == "torch":
        return TorchBackend(model_from_artifact(artifact, aux_logits=False), device or torch.device("cpu"))
    if kind == "onnxruntime":
        return OnnxBackend(artifact.source, threads)
    if kind == "openvino":
        return OpenVinoBackend(artifact.source, threads)
    return TorchScriptBackend(artifact.source)
