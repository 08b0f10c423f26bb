"""The bench's models, with random weights (speed does not depend on them): torchvision's
googlenet and ours (bn, paper) in torch, their files exported as users export them (ONNX and
OpenVINO IR, fp32 and int8), the calls that time each, and their multiply-adds."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from googlenet.arch.costs import network_cost
from googlenet.arch.table import AUX, get_variant
from googlenet.deploy.export import export_onnx, generated_images, inference_model
from googlenet.errors import ModelSourceError
from googlenet.model.network import build_network

NUM_CLASSES = 1000  # ImageNet's head, as torchvision's

Runner = Callable[[], object]  # one timed call: a batch through a model, or one training step
Backend = Literal["torch", "onnxruntime", "openvino"]


# --- Models and their multiply-adds ------------------------------------------------------


def torchvision_googlenet(aux_logits: bool) -> nn.Module:
    from torchvision.models import googlenet

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy-based init warning
        return googlenet(weights=None, aux_logits=aux_logits, init_weights=True, num_classes=NUM_CLASSES)


def ours(variant: str, aux_logits: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return build_network(variant, NUM_CLASSES, aux_logits=aux_logits)


def forward_macs(variant: str, size: int) -> int:
    return network_cost(get_variant(variant), size, NUM_CLASSES).total.ops


def training_macs(variant: str, size: int) -> int:
    """Forward with both auxiliary heads, and backward counted as twice the forward."""
    cost = network_cost(get_variant(variant), size, NUM_CLASSES)
    return 3 * (cost.total.ops + cost.aux.ops)


# --- Runners -----------------------------------------------------------------------------


def torch_runner(model: nn.Module, batch: int, size: int, channels_last: bool = False) -> Runner:
    x = torch.randn(batch, 3, size, size)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    model.eval()

    def run() -> Tensor:
        with torch.inference_mode():
            return model(x)
    return run


def compiled_runner(batch: int, size: int) -> Runner:
    model = inference_model(ours("bn")).to(memory_format=torch.channels_last)
    return torch_runner(torch.compile(model, dynamic=False), batch, size, channels_last=True)


def file_runner(backend: Backend, path: Path, batch: int, size: int, threads: int) -> Runner:
    """A runner of an exported file on `backend` ('onnxruntime' or 'openvino')."""
    from googlenet.inference.backends import OnnxBackend, OpenVinoBackend

    model = (OpenVinoBackend if backend == "openvino" else OnnxBackend)(path, threads)
    x = torch.randn(batch, 3, size, size).numpy()
    return lambda: model.run_numpy(x)


def train_step_runner(model: nn.Module, batch: int, size: int, channels_last: bool, bf16: bool) -> Runner:
    """One SGD step: forward with the auxiliary heads (AUX.loss_weight, Sec. 5), backward, update."""
    model.train()
    x, labels = torch.randn(batch, 3, size, size), torch.randint(0, NUM_CLASSES, (batch,))
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    forward = (model.forward_train if hasattr(model, "forward_train")
               else lambda images: torchvision_outputs(model(images)))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, aux = forward(x)
            loss = F.cross_entropy(logits, labels) + AUX.loss_weight * sum(
                F.cross_entropy(a, labels) for a in aux)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def torchvision_outputs(outputs) -> tuple[Tensor, list[Tensor]]:
    return outputs.logits, [outputs.aux_logits1, outputs.aux_logits2]


# --- Exported files ----------------------------------------------------------------------


def export_plain_onnx(model: nn.Module, path: Path, size: int) -> Path:
    """torchvision's model exported the way a user would: legacy exporter, dynamic batch.

    The exporter folds its batch norm into the convolutions (constant folding in eval mode).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(1, 3, size, size),), str(path), dynamo=False,
                          opset_version=17, input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    return path


def exported_models(folder: Path, size: int, calibration_images: int, openvino: bool,
                    log: Callable[[str], None]) -> dict[str, Path]:
    """fp32 and int8 ONNX files of ours (bn, paper) and of torchvision's, quantized the same way;
    with `openvino`, OpenVINO IRs too. Keys: tv, bn, paper, NAME-int8, tv-int8-ort-ops, ov-NAME,
    ov-NAME-int8."""
    from googlenet.deploy.quantize import quantize_onnx

    paths = {"tv": export_plain_onnx(torchvision_googlenet(False), folder / "tv.onnx", size)}
    for variant in ("bn", "paper"):
        paths[variant] = folder / f"{variant}.onnx"
        export_onnx(inference_model(ours(variant)), paths[variant], size, None, 17, {})
    calibration = generated_images(calibration_images, size)
    for name in ("tv", "bn", "paper"):
        paths[f"{name}-int8"] = quantize_onnx(paths[name], folder / f"{name}.int8.onnx", calibration)
    paths["tv-int8-ort-ops"] = quantize_onnx(paths["tv"], folder / "tv.int8-ort-ops.onnx", calibration,
                                             ort_default_ops=True)
    if openvino:
        try:
            paths.update(openvino_models(folder, size, paths["tv"], calibration))
        except ModelSourceError as error:  # a model OpenVINO cannot convert: the other rows stand
            log(f"OpenVINO rows left out: {error}")
    return paths


def openvino_models(folder: Path, size: int, torchvision_onnx: Path, calibration: Tensor) -> dict[str, Path]:
    """OpenVINO IRs: ours as `googlenet export --to openvino` writes them (LRN as one operator),
    torchvision's converted from its own ONNX export; int8 by `googlenet quantize --engine
    openvino`'s NNCF settings."""
    import openvino as ov

    from googlenet.deploy.export import export_openvino, save_openvino
    from googlenet.deploy.quantize import quantize_openvino

    paths = {"ov-tv": folder / "ov-tv.xml"}
    save_openvino(ov.convert_model(str(torchvision_onnx)), paths["ov-tv"], {})
    for variant in ("bn", "paper"):
        paths[f"ov-{variant}"] = folder / f"ov-{variant}.xml"
        export_openvino(inference_model(ours(variant)), paths[f"ov-{variant}"], size, None, 17, {})
    for name in ("tv", "bn", "paper"):
        paths[f"ov-{name}-int8"] = quantize_openvino(paths[f"ov-{name}"], folder / f"ov-{name}.int8.xml",
                                                     calibration)
    return paths
