"""Backends: what turns a batch of preprocessed images into logits.

    torch        a GoogLeNet built from the artifact's weights (any device)
    onnxruntime  an exported .onnx (fp32 or int8), on ONNX Runtime's CPU provider
    torchscript  an exported TorchScript file

Each is a callable `N x 3 x H x W float tensor -> N x C logits` (a CPU float tensor for
the file backends). `open_backend` picks one for an artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from googlenet.artifact.build import model_from_artifact
from googlenet.artifact.record import Artifact
from googlenet.errors import ModelSourceError
from googlenet.inference.options import BACKENDS


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


def session_options(threads: int | None = None):  # noqa: ANN201 - onnxruntime.SessionOptions
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()  # torch's: all cores by default
    options.inter_op_num_threads = 1  # one chain of convolutions: parallelism is inside the ops
    return options


class OnnxBackend:
    """ONNX Runtime's CPU provider. A file exported with a fixed batch size is fed in chunks of
    that size (the last chunk padded), so any batch works."""

    name = "onnxruntime"
    device = torch.device("cpu")

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model {self.path} does not exist")
        try:
            self.session = ort.InferenceSession(str(self.path), session_options(threads),
                                                providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            raise ModelSourceError(f"{self.path} is not a readable ONNX model: {error}") from None
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.fixed_batch = first.shape[0] if isinstance(first.shape[0], int) else None

    def run_numpy(self, images: np.ndarray) -> np.ndarray:
        if self.fixed_batch is None:
            return self.session.run(None, {self.input_name: images})[0]
        n, size = len(images), self.fixed_batch
        chunks = []
        for start in range(0, n, size):
            chunk = images[start:start + size]
            pad = size - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            chunks.append(self.session.run(None, {self.input_name: chunk})[0][:size - pad])
        return np.concatenate(chunks)

    def __call__(self, images: Tensor) -> Tensor:
        array = np.ascontiguousarray(images.detach().cpu().float().numpy())  # any memory format in
        return torch.from_numpy(self.run_numpy(array))


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


def file_kind(artifact: Artifact) -> str:
    """'onnxruntime' or 'torchscript' for an exported graph, 'torch' for weights."""
    if artifact.state_dict is not None:
        return "torch"
    return "onnxruntime" if artifact.source.lower().endswith(".onnx") else "torchscript"


def open_backend(artifact: Artifact, backend: str = "auto", device: torch.device | None = None,
                 threads: int | None = None) -> Backend:
    """The backend `backend` for `artifact` ('auto': the one its format runs on)."""
    if backend not in BACKENDS:
        raise ModelSourceError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    kind = file_kind(artifact)
    if backend not in ("auto", kind):
        hint = ("export it with googlenet export" if kind == "torch"
                else "its weights are inside the exported graph")
        raise ModelSourceError(f"{artifact.source} runs on the {kind} backend, not {backend} ({hint})")
    if kind == "torch":
        return TorchBackend(model_from_artifact(artifact, aux_logits=False), device or torch.device("cpu"))
    if kind == "onnxruntime":
        return OnnxBackend(artifact.source, threads)
    return TorchScriptBackend(artifact.source)
