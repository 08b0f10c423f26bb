"""An exported `.onnx` (fp32 or int8) run by ONNX Runtime, behind the same EvalModel as a checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .evaluate import EvalModel
from .export import data_from_metadata


def session_options(threads: int | None = None):  # noqa: ANN201 - onnxruntime.SessionOptions
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()  # torch's: all cores by default
    options.inter_op_num_threads = 1  # one chain of convolutions: parallelism is inside the ops
    return options


class OnnxModel:
    """A callable like an eval-mode GoogLeNet: N x 3 x H x W float tensor -> N x C logits (torch).

    Runs on ONNX Runtime's CPU provider. A file exported with a fixed batch size is fed in
    chunks of that size (the last chunk padded), so any batch works.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model {self.path} does not exist")
        try:
            self.session = ort.InferenceSession(str(self.path), session_options(threads),
                                                providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            raise ValueError(f"{self.path} is not a readable ONNX model: {error}") from None
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.fixed_batch = first.shape[0] if isinstance(first.shape[0], int) else None
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def eval(self) -> OnnxModel:
        return self

    def to(self, *args, **kwargs) -> OnnxModel:  # noqa: ANN002, ANN003 - always on the CPU
        return self

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


def load_onnx_for_eval(path: str | Path, threads: int | None = None) -> EvalModel:
    """An exported ONNX model with the classes and preprocessing read from its metadata."""
    model = OnnxModel(path, threads)
    data, classes = data_from_metadata(model.metadata, str(path))
    return EvalModel(str(path), model, classes, data, averaged=False)  # type: ignore[arg-type]
