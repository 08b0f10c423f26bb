"""Static int8 quantization, and its accuracy measured against fp32, with two engines.

onnxruntime  `quantize_static` in QDQ format, per-channel int8 weights and uint8
             activations (the u8s8 kernels that use AVX-512 VNNI on x86), min-max ranges
             calibrated on real images. ORT fuses each DequantizeLinear -> Conv ->
             QuantizeLinear into one int8 convolution when the session is created.
openvino     NNCF's post-training quantization of the OpenVINO IR (per-channel symmetric
             weights, the PERFORMANCE preset, global min-max activation ranges), calibrated
             on the same images; an IR out.

Either way, the int8 model is compared with its fp32 source on the same held-out images,
on the same engine.
"""

from __future__ import annotations

import contextlib
import gc
import io
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from googlenet.artifact.build import artifact_of
from googlenet.artifact.record import Artifact
from googlenet.data.config import AugmentConfig, DataConfig
from googlenet.data.datasets import ImageFileDataset
from googlenet.data.images import is_image_file, read_image
from googlenet.data.preprocessing import Preprocessing
from googlenet.data.splits import load_datasets
from googlenet.data.subsets import evenly_spaced
from googlenet.data.transforms import eval_transform
from googlenet.data.trees import find_splits, open_tree, split_from_tree, train_folder
from googlenet.deploy.export import dataset_images, export_model, set_onnx_metadata
from googlenet.deploy.options import QUANTIZE_ENGINES, SUFFIXES
from googlenet.errors import DataError, ModelSourceError, NotFound
from googlenet.extras import require_extra
from googlenet.inference.backends import OnnxBackend, OpenVinoBackend
from googlenet.inference.metrics import Accuracy
from googlenet.model.network import GoogLeNet
from googlenet.runtime.files import atomic_path, check_output
from googlenet.runtime.progress import OnProgress, no_progress

CALIBRATION = "calibration"  # the stages `quantize_model` reports (runtime.progress)
HELD_OUT = ("held-out fp32", "held-out int8")


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    fp32_path: Path | None  # the fp32 .onnx quantized, when the user gave one (else a temporary)
    calibration_images: int
    calibrated_on: str
    eval_images: int
    fp32_top1: float
    int8_top1: float
    agreement: float  # fraction of held-out images where int8 and fp32 predict the same class

    @property
    def top1_drop(self) -> float:
        return self.fp32_top1 - self.int8_top1


class TensorReader:
    """A CalibrationDataReader over a tensor of images, in batches. The calibrator runs each
    batch before it asks for the next: asked for images[start:], it has done `start`
    (`on_progress`)."""

    def __init__(self, input_name: str, images: Tensor, batch_size: int = 16,
                 on_progress: OnProgress = no_progress) -> None:
        self.input_name, self.images, self.batch_size = input_name, images, batch_size
        self.on_progress = on_progress
        self.batches: Iterator[np.ndarray] = self._batches()

    def _batches(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self.images), self.batch_size):
            self.on_progress(CALIBRATION, "img", start, len(self.images))
            yield np.ascontiguousarray(self.images[start:start + self.batch_size].float().numpy())
        self.on_progress(CALIBRATION, "img", len(self.images), len(self.images))

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:
        self.batches = self._batches()


def folder_images(folder: Path, prep: Preprocessing, count: int) -> Tensor:
    """A plain folder of image files (no class folders), eval-transformed."""
    files = sorted(p for p in folder.iterdir() if is_image_file(p.name))
    if not files:
        raise DataError(f"no image files in {folder}")
    transform = eval_transform(prep)
    decoded = [read_image(files[i].read_bytes) for i in evenly_spaced(count, len(files))]
    images = [transform(image) for image, _ in decoded if image is not None]
    if not images:
        raise DataError(f"no readable images in {folder}: {decoded[0][1]}")
    return torch.stack(images)


def training_split_images(source: str, prep: Preprocessing, count: int) -> Tensor:
    """`count` images of the training split of `source` (digits, or a folder or archive with
    train/ and val/), or of `source` itself when it is one class-folder root (e.g. CIFAR-10's
    train.tar), with eval crops."""
    if source == "digits":
        data = DataConfig(path=source)
        dataset = load_datasets(data, AugmentConfig(policy="none"), seed=0, prep=prep).train
    else:
        tree = open_tree(source, None)
        dataset = ImageFileDataset(split_from_tree(tree, train_folder(tree)),
                                   eval_transform(prep), 0, prep.input_size)
    images = [dataset[i][0] for i in evenly_spaced(count, len(dataset))]  # type: ignore[arg-type]
    return torch.stack([image for image in images if image is not None])


def held_out_data(source: str) -> DataConfig:
    """The validation split of a tree with train/ and val/ (or digits), or `source` itself
    when it is one class-folder root (e.g. CIFAR-10's test.tar)."""
    if source != "digits" and find_splits(open_tree(source, None)) is None:
        return DataConfig(path="", val_dir=source)
    return DataConfig(path=source)


def calibration_images(source: str, prep: Preprocessing, count: int) -> tuple[Tensor, str]:
    """Calibration images: a plain image folder, or the training split of a data set.

    The training split keeps them apart from the held-out validation images.
    """
    path = Path(source)
    if path.is_dir() and not any(p.is_dir() for p in path.iterdir()):
        return folder_images(path, prep, count), f"{count} images of {path}"
    if source != "digits" and not path.exists():
        raise NotFound(f"calibration data {source} does not exist")
    return training_split_images(source, prep, count), f"{count} training images of {source}"


def quantize_onnx(fp32_path: Path, output: Path, calibration: Tensor, per_channel: bool = True,
                  exclude_ops: tuple[str, ...] = (), ort_default_ops: bool = False,
                  on_progress: OnProgress = no_progress) -> Path:
    """fp32 ONNX -> int8 QDQ ONNX, calibrated on `calibration`, metadata carried over;
    `on_progress`: the calibration's images done.

    Every quantizable op is quantized (pools and concats too), so that Inception modules can
    run in int8 from end to end; `ort_default_ops` uses quantize_static's own selection instead
    (`googlenet bench` compares both: within a few percent of each other on this CPU).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)  # shapes + fusions
        input_name = onnx.load(str(prepared)).graph.input[0].name
        ops = None if ort_default_ops else quantized_op_types(prepared, exclude_ops)
        reader = TensorReader(input_name, calibration, on_progress=on_progress)
        quantize_static(str(prepared), str(output), reader,
                        quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=ops)
    source, model = onnx.load(str(fp32_path)), onnx.load(str(output))
    set_onnx_metadata(model, {p.key: p.value for p in source.metadata_props})
    onnx.save(model, str(output))
    return output


def quantize_openvino(fp32_path: Path, output: Path, calibration: Tensor,
                      on_progress: OnProgress = no_progress) -> Path:
    """fp32 IR or .onnx -> int8 IR with NNCF, calibrated on `calibration`, metadata carried over;
    `on_progress`: the calibration's images taken by NNCF."""
    require_extra("openvino", "int8 quantization with OpenVINO")
    import nncf
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    from googlenet.artifact.files import openvino_metadata
    from googlenet.deploy.export import save_openvino
    from googlenet.runtime import openvino as openvino_runtime
    from googlenet.weights.sources import onnx_metadata

    model = openvino_runtime.core().read_model(str(fp32_path))
    samples = [np.ascontiguousarray(calibration[i:i + 1].float().numpy()) for i in range(len(calibration))]
    taken = 0
    on_progress(CALIBRATION, "img", taken, len(samples))

    def counted(sample: np.ndarray) -> np.ndarray:
        nonlocal taken
        taken += 1
        on_progress(CALIBRATION, "img", taken, len(samples))
        return sample

    # Global min-max activation ranges (as ONNX Runtime's calibration) and no bias correction:
    # on the digits model NNCF's defaults (ranges averaged over samples, bias correction) agreed
    # with fp32 on 88.5% of held-out images, these settings on 99.5% (ONNX Runtime: 99.0%).
    advanced = nncf.AdvancedQuantizationParameters(
        activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
        disable_bias_correction=True)
    # NNCF compiles on Cores of its own, gone before the thread gets its signal stack back
    # (runtime/openvino.py); its progress bars are silenced (the CLI's stdout is for results).
    with contextlib.redirect_stdout(io.StringIO()), openvino_runtime.signal_stack_kept():
        quantized = nncf.quantize(model, nncf.Dataset(samples, counted), subset_size=len(samples),
                                  preset=nncf.QuantizationPreset.PERFORMANCE,
                                  advanced_parameters=advanced)
        gc.collect()
    metadata = (openvino_metadata(fp32_path) if fp32_path.suffix.lower() == ".xml"
                else onnx_metadata(fp32_path))
    save_openvino(quantized, output, metadata)
    return output


def quantized_op_types(path: Path, exclude_ops: tuple[str, ...]) -> list[str]:
    """Every op type in the graph that ORT can quantize, minus `exclude_ops`.

    LRN stays in float (its AveragePool over x^2, its square roots and division); its
    neighbours are quantized around it.
    """
    import onnx

    present = {node.op_type for node in onnx.load(str(path)).graph.node}
    quantizable = {"Conv", "Gemm", "MatMul", "MaxPool", "Concat", "GlobalAveragePool", "Relu",
                   "Flatten", "Reshape"}
    return sorted((present & quantizable) - set(exclude_ops))


def logits_of(model: FileBackend, images: Tensor, batch_size: int = 32,
              on_done: Callable[[int], None] = lambda done: None) -> Tensor:
    """The logits of `images`, in batches; `on_done(images done)` after each."""
    out = []
    for start in range(0, len(images), batch_size):
        out.append(model(images[start:start + batch_size]))
        on_done(start + len(out[-1]))
    return torch.cat(out)


FileBackend = OnnxBackend | OpenVinoBackend


def compare(fp32: FileBackend, int8: FileBackend, images: Tensor, labels: Tensor,
            on_progress: OnProgress = no_progress) -> tuple[float, float, float]:
    """(fp32 top-1, int8 top-1, agreement) on labelled images."""
    rates, predictions = [], []
    for model, stage in zip((fp32, int8), HELD_OUT):
        def done(n: int, stage: str = stage) -> None:
            on_progress(stage, "img", n, len(images))

        done(0)
        logits = logits_of(model, images, on_done=done)
        accuracy = Accuracy(logits.shape[1])
        accuracy.add(logits, labels)
        rates.append(accuracy.top1_rate)
        predictions.append(logits.argmax(1))
    return rates[0], rates[1], (predictions[0] == predictions[1]).float().mean().item()


def quantize_model(model: GoogLeNet | Artifact, output: str | Path, calibration: str, images: int = 256,
                   eval_images: int = 500, eval_data: DataConfig | None = None,
                   overwrite: bool = False, engine: str = "onnxruntime",
                   on_progress: OnProgress = no_progress) -> QuantizeResult:
    """Quantize a model (with its record) or an artifact with `engine` (an fp32 .onnx, an fp32
    OpenVINO .xml for openvino, or weights exported to a temporary fp32 file first) and
    measure int8 against fp32 on `eval_images` validation images of `eval_data` (default: the
    data its training run recorded). An existing output is replaced only with `overwrite`.
    `on_progress(stage, unit, done, total)` as the calibration (stage CALIBRATION) and the two
    held-out passes (HELD_OUT) go."""
    artifact = artifact_of(model) if isinstance(model, GoogLeNet) else model
    if engine not in QUANTIZE_ENGINES:
        raise ValueError(f"engine must be one of {', '.join(QUANTIZE_ENGINES)}, got {engine!r}")
    output = check_output(output, overwrite)
    suffix = SUFFIXES["openvino" if engine == "openvino" else "onnx"]
    if output.suffix.lower() != suffix:
        raise ValueError(f"{output}: the {engine} engine writes a {suffix} file")
    output.parent.mkdir(parents=True, exist_ok=True)
    eval_data = eval_data or artifact.recorded_data()
    if eval_data is None:
        raise DataError(f"{artifact.source} records no validation data: name the held-out data")
    with tempfile.TemporaryDirectory() as tmp:
        given = artifact.state_dict is None
        fp32_path = Path(artifact.source) if given else Path(tmp) / f"fp32{suffix}"
        if given and engine == "onnxruntime" and fp32_path.suffix.lower() != ".onnx":
            raise ModelSourceError(f"{fp32_path}: the onnxruntime engine quantizes an .onnx file or weights")
        if not given:
            result = export_model(artifact, "openvino" if engine == "openvino" else "onnx", fp32_path)
            if not result.ok:
                raise ModelSourceError(f"the fp32 export differs from PyTorch by {result.max_abs_diff:.3g}")
        calib, where = calibration_images(calibration, artifact.preprocessing, images)
        if engine == "openvino":
            quantize_openvino(fp32_path, output, calib, on_progress)  # its two files, atomically
        else:
            with atomic_path(output) as partial:
                quantize_onnx(fp32_path, partial, calib, on_progress=on_progress)
        held_out, labels = dataset_images(eval_data, artifact, eval_images)
        backend = OpenVinoBackend if engine == "openvino" else OnnxBackend
        fp32_top1, int8_top1, agreement = compare(backend(fp32_path), backend(output), held_out, labels,
                                                  on_progress)
    return QuantizeResult(output, fp32_path if given else None, len(calib), where, len(labels),
                          fp32_top1, int8_top1, agreement)

