"""Export for inference: ONNX, TorchScript or safetensors, each checked after writing.

Only the eval-mode logits are exported (the auxiliary heads are never called by
`forward`). Batch norm is folded into the convolutions first (variant `bn`), and
LRN (variant `paper`) becomes an average pool and elementwise ops (FastLRN). For OpenVINO, LRN stays one
LRN operator instead, which OpenVINO runs as one fused kernel. The artifact's metadata
(classes, preprocessing, provenance) travels with every file through
`artifact.schema`: ONNX metadata_props, OpenVINO rt_info, safetensors header metadata, a
TorchScript extra file. The check loads the written file back the way a user would
(`load_artifact` and a backend) and compares its metadata and logits with PyTorch's.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from googlenet.artifact import schema
from googlenet.artifact.build import artifact_of, model_from_artifact
from googlenet.artifact.files import save_safetensors
from googlenet.artifact.record import Artifact
from googlenet.artifact.rundir import OUTPUTS, output_folder
from googlenet.data.config import DataConfig
from googlenet.data.splits import load_eval_dataset
from googlenet.data.subsets import evenly_spaced
from googlenet.data.transforms import eval_transform
from googlenet.deploy.options import DEFAULT_OPSET, DEFAULT_TOLERANCE, FORMATS, SUFFIXES
from googlenet.errors import ConfigError, DataError, ModelSourceError
from googlenet.extras import require_extra
from googlenet.inference.backends import open_backend
from googlenet.model.layers import ConvUnit
from googlenet.model.network import GoogLeNet
from googlenet.runtime.files import check_output
from googlenet.weights.sources import load_artifact

INPUT_NAME, OUTPUT_NAME = "images", "logits"


# --- Inference rewrites -------------------------------------------------------------------


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """conv -> bn (eval mode) as one convolution: w' = w * g / sqrt(var + eps), b' = (b - mean) * s + beta."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)  # float64: no extra rounding
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                      padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True)
    fused.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
    fused.bias.copy_((bias - bn.running_mean.double()) * scale + bn.bias.double())
    return fused.to(conv.weight.device)


def fold_batch_norm(model: GoogLeNet) -> GoogLeNet:
    """A copy of `model` whose ConvUnits have their BatchNorm folded into the convolution.

    Equal to `model` in eval mode only (running statistics); the original is untouched.
    """
    folded = copy.deepcopy(model).eval()
    for unit in folded.modules():
        if isinstance(unit, ConvUnit) and unit.bn is not None:
            unit.conv, unit.bn = fold_conv_bn(unit.conv, unit.bn), None
    return folded


class FastLRN(nn.LocalResponseNorm):
    """LRN as ops every runtime runs fast, computing exactly what PyTorch's (and Caffe's) does:
    x / (k + alpha * mean of x^2 over the channel window)^beta.

    The window mean is an average pool over a reshaped tensor (N x 1 x C x H x W, the window
    along channels), and for the paper's beta of 0.75, d^-0.75 is 1 / (sqrt(d) * sqrt(sqrt(d))):
    no general Pow. ONNX Runtime's own LRN operator ran the paper variant at 0.54x of `bn`;
    this graph at 0.82x (benchmarks/paper_variant_speed.py).
    """

    def forward(self, x: Tensor) -> Tensor:
        squares = (x * x).unsqueeze(1)
        mean = F.avg_pool3d(squares, (self.size, 1, 1), stride=1,
                            padding=(self.size // 2, 0, 0)).squeeze(1)
        d = mean * self.alpha + self.k
        if self.beta == 0.75:
            root = torch.sqrt(d)
            return x / (root * torch.sqrt(root))
        return x * d.pow(-self.beta)


class _LRNOperator(torch.autograd.Function):
    """F.local_response_norm, exported as ONNX's one LRN operator (same settings)."""

    @staticmethod
    def forward(ctx, x, size, alpha, beta, k):
        return F.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size, alpha, beta, k):
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class OperatorLRN(nn.LocalResponseNorm):
    """LRN as ONNX's LRN operator: OpenVINO runs it as one fused kernel (the paper variant at
    0.83x of `bn` in fp32, against 0.67x with FastLRN's ops, in one run on 2 cores); ONNX
    Runtime's implementation of it is slow (benchmarks/paper_variant_speed.py)."""

    def forward(self, x: Tensor) -> Tensor:
        return _LRNOperator.apply(x, self.size, self.alpha, self.beta, self.k)


class FloorModeMaxPool(nn.Module):
    """A ceil-mode max pool (the paper's pools, Sec. 5 / Caffe's rounding up) whose window is
    larger than its input, as an explicit -inf padding and a floor-mode pool: the same numbers,
    and a graph that OpenVINO's converter accepts (it refuses a ceil-mode 3x3 window over a 2x2
    map, which PyTorch allows; at 32x32 the last pool has one). Where the window fits, the
    pool is left as it is. The padding is fixed for the exported input size."""

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.kernel, self.stride, self.padding = (nn.modules.utils._pair(v) for v in (
            pool.kernel_size, pool.stride, pool.padding))

    def forward(self, x: Tensor) -> Tensor:
        k, s, p = self.kernel, self.stride, self.padding
        if all(k[i] <= int(x.shape[2 + i]) + 2 * p[i] for i in (0, 1)):
            # The window fits: the plain ceil-mode pool, which OpenVINO converts (and runs in
            # int8: a -inf padding would stay in float).
            return F.max_pool2d(x, k, s, p, ceil_mode=True)
        pads: list[int] = []
        for axis in (1, 0):  # F.pad takes the last dimension (width) first
            size, k, s, p = (int(x.shape[2 + axis]), self.kernel[axis], self.stride[axis],
                             self.padding[axis])
            out = -(-(size + 2 * p - k) // s) + 1  # PyTorch's ceil-mode output size
            if (out - 1) * s >= size + p:  # the last window must start inside the input
                out -= 1
            pads += [p, p + max(0, (out - 1) * s + k - (size + 2 * p))]
        return F.max_pool2d(F.pad(x, pads, value=float("-inf")), self.kernel, self.stride)


def floor_mode_pools(model: nn.Module) -> nn.Module:
    """Every ceil-mode MaxPool2d of `model` replaced by a FloorModeMaxPool (in place)."""
    for name, module in model.named_children():
        if isinstance(module, nn.MaxPool2d) and module.ceil_mode:
            setattr(model, name, FloorModeMaxPool(module))
        else:
            floor_mode_pools(module)
    return model


def swap_lrn(model: nn.Module, lrn_type: type[nn.LocalResponseNorm]) -> nn.Module:
    """Every LocalResponseNorm of `model` replaced by an `lrn_type` of the same settings
    (in place)."""
    for name, module in model.named_children():
        if isinstance(module, nn.LocalResponseNorm):
            setattr(model, name, lrn_type(module.size, module.alpha, module.beta, module.k))
        else:
            swap_lrn(module, lrn_type)
    return model


def inference_model(model: GoogLeNet) -> GoogLeNet:
    """The model as exported: eval mode, BN folded, NCHW weights, on the CPU."""
    return fold_batch_norm(model.cpu()).to(memory_format=torch.contiguous_format)


# --- Images for the parity check ----------------------------------------------------------


def generated_images(count: int, size: int, seed: int = 0) -> Tensor:
    """Smooth random colour fields (upsampled noise), normalised roughly like real images."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 8, 8, generator=g)
    images = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return ((images - 0.45) / 0.25).clamp(-2.5, 2.5)


def dataset_images(data: DataConfig, artifact: Artifact, count: int) -> tuple[Tensor, Tensor]:
    """`count` images spread evenly over the validation split of `data`, preprocessed for
    `artifact`, with their labels."""
    prep = artifact.preprocessing
    dataset, _ = load_eval_dataset(replace(data, in_memory=False), eval_transform(prep), prep.input_size)
    images, labels = [], []
    for index in evenly_spaced(count, len(dataset)):
        image, label, bad = dataset[index]
        if bad is None:
            images.append(image)
            labels.append(label)
    if not images:
        raise DataError(f"no readable images in the validation data of {data.val_dir or data.path}")
    return torch.stack(images), torch.tensor(labels)


def check_images(artifact: Artifact, data: DataConfig | None, count: int) -> tuple[Tensor, str]:
    """Real validation images of `data` when given, else generated ones (never whatever lies in
    the working directory)."""
    if data is None:
        return generated_images(count, artifact.preprocessing.input_size), f"{count} generated images"
    where = data.val_dir or data.path
    return dataset_images(data, artifact, count)[0], f"{count} validation images of {where}"


# --- Export -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    max_abs_diff: float  # exported vs PyTorch eager logits on the check images
    tolerance: float
    checked_on: str

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance


def export_format(fmt: str | None, output: str | Path | None) -> str:
    """The format asked for, else the one `output`'s suffix names, else ONNX; a suffix that
    names another format (or none we write) is an error, never a file of one format under
    another's name that the reader would then refuse."""
    suffix = Path(output).suffix.lower() if output else ""
    by_suffix = {s: f for f, s in SUFFIXES.items()}
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if suffix and suffix not in by_suffix:
        raise ConfigError(f"{output}: no export format is written as {suffix!r}; name the file "
                          f"{' or '.join('*' + s for s in by_suffix)}")
    if fmt is not None and suffix and by_suffix[suffix] != fmt:
        raise ConfigError(f"{output}: the format {fmt} is written as *{SUFFIXES[fmt]}, and "
                          f"{suffix} names {by_suffix[suffix]}: give one or the other")
    return fmt or by_suffix.get(suffix, "onnx")


def output_path(output: str | Path | None, source: str, fmt: str) -> Path:
    """`output` (given the format's suffix when it has none); without one, in the model's run
    (runs/x/best.pt -> runs/x/x.onnx), else under outputs/ (artifact.rundir.output_folder)."""
    if output is not None:
        path = Path(output)
        return path if path.suffix else path.with_name(path.name + SUFFIXES[fmt])
    folder = output_folder(source)
    in_memory = source.startswith("<")  # "<in memory>", "<new>": no file to name it after
    name = folder.name if folder != OUTPUTS else "googlenet" if in_memory else Path(source).stem
    target = folder / f"{name or 'googlenet'}{SUFFIXES[fmt]}"
    return target.with_name(f"{target.stem}-export{target.suffix}") if target == Path(source) else target


def move_into_place(staged: Path, path: Path, fmt: str) -> None:
    """The checked export under its final name; an IR's .bin first, so that no reader sees an
    .xml without its weights."""
    if fmt == "openvino":
        os.replace(staged.with_suffix(".bin"), path.with_suffix(".bin"))
    os.replace(staged, path)


def export_onnx(model: GoogLeNet, path: Path, size: int, batch: int | None, opset: int,
                metadata: dict[str, str], lrn: type[nn.LocalResponseNorm] = FastLRN) -> None:
    """Write an ONNX file with `metadata` as metadata_props and check it with onnx.checker.

    The TorchScript-based exporter (dynamo=False): measured here it exports in 1-3 s against
    9-13 s for the dynamo exporter, gives the same operator graph (Conv/Relu/MaxPool/Concat/Gemm;
    ceil_mode pools included); LRN goes out as `lrn` (FastLRN's ops by default).
    """
    import onnx

    net = swap_lrn(copy.deepcopy(model), lrn)
    example = torch.zeros(batch or 1, 3, size, size)
    dynamic = None if batch else {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer warnings
        torch.onnx.export(net, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes=dynamic, do_constant_folding=True)
    proto = onnx.load(str(path))
    set_onnx_metadata(proto, metadata)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def set_onnx_metadata(proto, metadata: dict[str, str]) -> None:
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in metadata.items():
        prop = existing.get(key) or proto.metadata_props.add()
        prop.key, prop.value = key, value


def export_openvino(model: GoogLeNet, path: Path, size: int, batch: int | None, opset: int,
                    metadata: dict[str, str]) -> None:
    """Write an OpenVINO IR (`path` .xml and its .bin), converted from an ONNX export with LRN
    as one operator; the metadata in the IR's rt_info."""
    require_extra("openvino", "OpenVINO export")
    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(floor_mode_pools(copy.deepcopy(model)), onnx_path, size, batch, opset, {},
                    lrn=OperatorLRN)
        try:
            converted = ov.convert_model(str(onnx_path))
        except Exception as error:  # OpenVINO's OpConversionFailure, with pages of detail
            raise ModelSourceError(f"OpenVINO cannot convert this model at input size {size}: "
                                   f"{str(error).strip().splitlines()[-1]}") from None
    save_openvino(converted, path, metadata)


def save_openvino(model, path: Path, metadata: dict[str, str]) -> None:
    """`model` as `path` (.xml) and its .bin, with `metadata` in rt_info, weights kept in fp32
    (OpenVINO's save_model halves them to fp16 by default). Both files are staged in the target
    folder and moved into place, the .bin first: a reader never sees a half-written file."""
    import openvino as ov

    from googlenet.artifact.files import OPENVINO_RT_SECTION

    for key, value in metadata.items():
        model.set_rt_info(value, [OPENVINO_RT_SECTION, key])
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".tmp-openvino-") as tmp:
        staged = Path(tmp) / "model.xml"
        ov.save_model(model, str(staged), compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(staged, path)


def export_torchscript(model: GoogLeNet, path: Path, size: int, batch: int | None,
                       metadata: dict[str, str]) -> None:
    """Trace (the forward has no data-dependent control flow); the metadata as an extra file."""
    example = torch.zeros(batch or 2, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files=metadata)


def reload(path: Path, original: Artifact) -> Artifact:
    """The written file loaded back as a user would; its metadata must be the original's."""
    loaded = load_artifact(path)
    for name in ("variant", "classes", "preprocessing"):
        if getattr(loaded, name) != getattr(original, name):
            raise ModelSourceError(f"{path}: {name} read back as {getattr(loaded, name)!r}, "
                                   f"written as {getattr(original, name)!r}")
    return loaded


def export_model(model: GoogLeNet | Artifact, fmt: str | None = None,
                 output: str | Path | None = None, *, batch: int | None = None,
                 opset: int = DEFAULT_OPSET, check_count: int = 8,
                 tolerance: float = DEFAULT_TOLERANCE, check_data: DataConfig | None = None,
                 overwrite: bool = False) -> ExportResult:
    """Export a model (its record, `model.artifact`, travels with it) or an artifact that holds
    weights to `fmt` (default: the one `output`'s suffix names, else ONNX), then load the file
    back and compare its metadata and logits with PyTorch's on `check_data`'s images (generated
    ones without). The file is written and read back in a staging folder beside `output`, and
    takes its name only once it has been read back: a file that cannot be read is never left
    behind, and an existing one is replaced only with `overwrite`."""
    artifact = artifact_of(model) if isinstance(model, GoogLeNet) else model
    fmt = export_format(fmt, output)
    path = check_output(output_path(output, artifact.source, fmt), overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    eager = model_from_artifact(artifact, aux_logits=False).cpu().eval()
    metadata = schema.to_metadata(artifact)
    size = artifact.preprocessing.input_size
    images, where = check_images(artifact, check_data, batch or check_count)
    with torch.no_grad():
        expected = eager(images)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".tmp-export-") as tmp:
        staged = Path(tmp) / path.name
        if fmt == "safetensors":
            save_safetensors(artifact, staged)
        elif fmt == "openvino":
            export_openvino(inference_model(eager), staged, size, batch, opset, metadata)
        elif fmt == "onnx":
            export_onnx(inference_model(eager), staged, size, batch, opset, metadata)
        else:
            export_torchscript(inference_model(eager), staged, size, batch, metadata)
        backend = open_backend(reload(staged, artifact))
        diff = (backend(images) - expected).abs().max().item()
        del backend  # the runtimes hold the file open
        move_into_place(staged, path, fmt)
    return ExportResult(path, fmt, diff, tolerance, where)
