"""`googlenet bench`: inference and training throughput against torchvision, in one process and one run.

Every figure is the median of several timed repetitions after warm-up, and is reported
as a ratio against a baseline measured in the same run (torchvision's googlenet in
eager mode: inference at the same batch size, and its training step), plus the
multiply-add rate it achieves as a fraction of the machine's matrix-multiply ceiling
for its precision, also measured in the same run (fp32: torch.mm; int8: ONNX Runtime's
MatMulInteger, u8 x s8, the kernels its int8 convolutions use). Weights are random (speed does not depend on
them); the int8 models are calibrated on generated images, so the bench says nothing
about their accuracy (`googlenet quantize` measures that).
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from googlenet.arch.costs import network_cost
from googlenet.arch.table import AUX, get_variant
from googlenet.deploy.export import export_onnx, generated_images, inference_model
from googlenet.errors import ModelSourceError
from googlenet.formatting import render_table
from googlenet.model.network import build_model

NUM_CLASSES = 1000  # ImageNet's head, as torchvision's


@dataclass(frozen=True)
class BenchConfig:
    input_size: int = 224
    batch_sizes: tuple[int, ...] = (1, 32)
    train_batch: int = 32
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    warmup: int = 2
    repeats: int = 5
    compile: bool = True
    calibration_images: int = 32
    ceiling_size: int = 2048  # n of the n x n x n matmuls that measure the ceilings
    openvino: bool = True  # the OpenVINO rows, when it is installed

    @staticmethod
    def quick(**overrides) -> BenchConfig:  # noqa: ANN003
        """Small inputs, few repetitions and no torch.compile (whose compilation alone took
        minutes on some machines): every other row, in about a minute on 2 cores."""
        base = dict(input_size=64, batch_sizes=(1, 4), train_batch=4, warmup=1, repeats=2,
                    calibration_images=4, ceiling_size=512, compile=False)
        return BenchConfig(**{**base, **overrides})


@dataclass
class BenchRow:
    name: str
    task: str  # inference | training
    batch: int
    seconds: float  # median time of one call (one batch)
    macs_per_image: int  # multiply-adds per image (training: forward + backward, aux heads included)
    images_per_second: float = 0.0
    ratio: float = 0.0  # against the baseline of the same task and batch size
    ceiling_fraction: float = 0.0  # achieved multiply-add rate / measured matmul ceiling
    note: str = ""
    precision: str = "fp32"  # fp32 | int8 | bf16: which ceiling the row is judged against

    def __post_init__(self) -> None:
        self.images_per_second = self.batch / self.seconds

    @property
    def latency_ms(self) -> float:
        return self.seconds * 1e3


@dataclass
class BenchReport:
    config: BenchConfig
    machine: dict[str, str]
    ceiling_gflops: float  # fp32 matmul, GFLOP/s (2 flops per multiply-add)
    rows: list[BenchRow]
    int8_ceiling_gops: float = 0.0  # int8 matmul, GOP/s (2 ops per multiply-add)


def interleaved_medians(runners: list[Callable[[], object]], warmup: int, repeats: int) -> list[float]:
    """Median seconds of each runner, timed in rounds (the order rotating each round), so that a
    machine getting slower or faster during the run (heat, other jobs) shifts every row alike
    instead of whichever ran last. In each round a runner first makes one untimed call: the
    previous runner's thread pool (ONNX Runtime's and OpenMP's spin) must settle first."""
    for fn in runners:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in runners]
    for round_index in range(repeats):
        shift = round_index % len(runners)
        for i in [*range(shift, len(runners)), *range(shift)]:
            runners[i]()
            start = time.perf_counter()
            runners[i]()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def matmul_ceiling_gflops(n: int, repeats: int = 5) -> float:
    """The machine's fp32 matrix-multiply rate (torch.mm, n x n by n x n), GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / interleaved_medians([lambda: torch.mm(a, b)], 2, repeats)[0] / 1e9


def int8_matmul_ceiling_gops(n: int, threads: int, repeats: int = 5) -> float:
    """The machine's int8 matrix-multiply rate (u8 x s8 -> s32, n x n by n x n), GOP/s, through
    ONNX Runtime's MatMulInteger: the same MLAS kernels (VNNI where the CPU has it) as its int8
    convolutions."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "int8_ceiling",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
         helper.make_tensor_value_info("b", TensorProto.INT8, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    from googlenet.inference.backends import session_options

    session = ort.InferenceSession(model.SerializeToString(), session_options(threads),
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {"a": rng.integers(0, 255, (n, n), dtype=np.uint8),
            "b": rng.integers(-128, 127, (n, n), dtype=np.int8)}
    seconds = interleaved_medians([lambda: session.run(None, feed)], 2, repeats)[0]
    return 2 * n**3 / seconds / 1e9


def openvino_version() -> str | None:
    try:
        import openvino
    except ImportError:
        return None
    return openvino.__version__.split("-")[0]


def machine_info(threads: int) -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime

    return {"cpu": cpu, "cpus": str(os.cpu_count()), "threads": str(threads),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "openvino": openvino_version() or "not installed", "python": platform.python_version()}


# --- Models ------------------------------------------------------------------------------


def torchvision_googlenet(aux_logits: bool) -> nn.Module:
    from torchvision.models import googlenet

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy-based init warning
        return googlenet(weights=None, aux_logits=aux_logits, init_weights=True, num_classes=NUM_CLASSES)


def ours(variant: str, aux_logits: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return build_model(variant, NUM_CLASSES, aux_logits=aux_logits)


def forward_macs(variant: str, size: int) -> int:
    return network_cost(get_variant(variant), size, NUM_CLASSES).total.ops


def training_macs(variant: str, size: int) -> int:
    """Forward with both auxiliary heads, and backward counted as twice the forward."""
    cost = network_cost(get_variant(variant), size, NUM_CLASSES)
    return 3 * (cost.total.ops + cost.aux.ops)


# --- Inference ---------------------------------------------------------------------------


def torch_runner(model: nn.Module, batch: int, size: int,
                 channels_last: bool = False) -> Callable[[], object]:
    x = torch.randn(batch, 3, size, size)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    model.eval()

    def run() -> Tensor:
        with torch.inference_mode():
            return model(x)
    return run


def file_runner(backend: str, path: Path, batch: int, size: int, threads: int) -> Callable[[], object]:
    """A runner of an exported file on `backend` ('onnxruntime' or 'openvino')."""
    from googlenet.inference.backends import OnnxBackend, OpenVinoBackend

    model = (OpenVinoBackend if backend == "openvino" else OnnxBackend)(path, threads)
    x = torch.randn(batch, 3, size, size).numpy()
    return lambda: model.run_numpy(x)


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


def onnx_models(config: BenchConfig, folder: Path, log: Callable[[str], None]) -> dict[str, Path]:
    """fp32 and int8 ONNX files of ours (bn, paper) and of torchvision's, quantized the same way."""
    from googlenet.deploy.quantize import quantize_onnx

    size = config.input_size
    paths = {"tv": export_plain_onnx(torchvision_googlenet(False), folder / "tv.onnx", size)}
    for variant in ("bn", "paper"):
        paths[variant] = folder / f"{variant}.onnx"
        export_onnx(inference_model(ours(variant)), paths[variant], size, None, 17, {})
    calibration = generated_images(config.calibration_images, size)
    for name in ("tv", "bn", "paper"):
        paths[f"{name}-int8"] = quantize_onnx(paths[name], folder / f"{name}.int8.onnx", calibration)
    paths["tv-int8-ort-ops"] = quantize_onnx(paths["tv"], folder / "tv.int8-ort-ops.onnx", calibration,
                                             ort_default_ops=True)
    if config.openvino and openvino_version():
        try:
            paths.update(openvino_models(config, folder, paths["tv"], calibration))
        except ModelSourceError as error:  # a model OpenVINO cannot convert: the other rows stand
            log(f"OpenVINO rows left out: {error}")
    return paths


def openvino_models(config: BenchConfig, folder: Path, torchvision_onnx: Path,
                    calibration: Tensor) -> dict[str, Path]:
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
        export_openvino(inference_model(ours(variant)), paths[f"ov-{variant}"], config.input_size,
                        None, 17, {})
    for name in ("tv", "bn", "paper"):
        paths[f"ov-{name}-int8"] = quantize_openvino(paths[f"ov-{name}"], folder / f"ov-{name}.int8.xml",
                                                     calibration)
    return paths


def inference_cases(config: BenchConfig, paths: dict[str, Path],
                    batch: int) -> list[tuple[str, str, Callable[[], Callable[[], object]], str]]:
    """(name, variant for the multiply-adds, runner factory, note); the first is the baseline."""
    size, threads = config.input_size, config.threads
    cases = [
        ("torchvision eager", "bn", lambda: torch_runner(torchvision_googlenet(False), batch, size), ""),
        ("ours bn eager", "bn", lambda: torch_runner(ours("bn"), batch, size), ""),
        ("ours paper eager", "paper", lambda: torch_runner(ours("paper"), batch, size), ""),
        ("ours bn channels_last", "bn", lambda: torch_runner(ours("bn"), batch, size, True), ""),
        ("ours bn channels_last folded", "bn",
         lambda: torch_runner(inference_model(ours("bn")), batch, size, True), "BN folded"),
    ]
    if config.compile:
        cases.append(("ours bn torch.compile", "bn", lambda: compiled_runner(batch, size),
                      "channels_last, BN folded, inductor"))
    # (name, key in `paths`, variant, note); OpenVINO rows only where its files were made.
    for name, key, variant, note in (
            ("ORT fp32 ours bn", "bn", "bn", "BN folded"),
            ("ORT fp32 ours paper", "paper", "paper", "LRN as FastLRN's ops"),
            ("ORT fp32 torchvision", "tv", "bn", "its own export"),
            ("ORT int8 ours bn", "bn-int8", "bn", "QDQ per-channel u8s8"),
            ("ORT int8 ours paper", "paper-int8", "paper", "QDQ per-channel u8s8, LRN fp32"),
            ("ORT int8 torchvision", "tv-int8", "bn", "quantized the same way"),
            ("ORT int8 torchvision, ORT's op set", "tv-int8-ort-ops", "bn",
             "QDQ per-channel, quantize_static's default op types"),
            ("OpenVINO fp32 ours bn", "ov-bn", "bn", "IR, f32 precision hint"),
            ("OpenVINO fp32 ours paper", "ov-paper", "paper", "IR, LRN as one operator"),
            ("OpenVINO fp32 torchvision", "ov-tv", "bn", "converted from its ONNX export"),
            ("OpenVINO int8 ours bn", "ov-bn-int8", "bn", "NNCF"),
            ("OpenVINO int8 ours paper", "ov-paper-int8", "paper", "NNCF, LRN fp32"),
            ("OpenVINO int8 torchvision", "ov-tv-int8", "bn", "NNCF, the same settings")):
        if key in paths:
            backend = "openvino" if key.startswith("ov-") else "onnxruntime"
            cases.append((name, variant, lambda key=key, backend=backend: file_runner(
                backend, paths[key], batch, size, threads), note))
    return cases


def compiled_runner(batch: int, size: int) -> Callable[[], object]:
    model = inference_model(ours("bn")).to(memory_format=torch.channels_last)
    return torch_runner(torch.compile(model, dynamic=False), batch, size, channels_last=True)


def bench_inference(config: BenchConfig, paths: dict[str, Path],
                    log: Callable[[str], None]) -> list[BenchRow]:
    rows = []
    for batch in config.batch_sizes:
        cases = inference_cases(config, paths, batch)
        runners = [factory() for _, _, factory, _ in cases]
        for (name, variant, _, note), seconds in zip(
                cases, interleaved_medians(runners, config.warmup, config.repeats)):
            rows.append(BenchRow(name, "inference", batch, seconds,
                                 forward_macs(variant, config.input_size), note=note,
                                 precision="int8" if " int8 " in name else "fp32"))
            log(f"{name}, batch {batch}: {batch / seconds:.1f} images/s")
    return rows


# --- Training ----------------------------------------------------------------------------


def train_step_runner(model: nn.Module, batch: int, size: int, channels_last: bool,
                      bf16: bool) -> Callable[[], object]:
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


def torchvision_outputs(outputs) -> tuple[Tensor, list[Tensor]]:  # noqa: ANN001 - GoogLeNetOutputs
    return outputs.logits, [outputs.aux_logits1, outputs.aux_logits2]


def bench_training(config: BenchConfig, log: Callable[[str], None]) -> list[BenchRow]:
    size, batch = config.input_size, config.train_batch
    cases = [
        ("torchvision train NCHW fp32", "bn", lambda: torchvision_googlenet(True), False, False),
        ("ours bn train NCHW fp32", "bn", lambda: ours("bn", True), False, False),
        ("ours bn train channels_last fp32", "bn", lambda: ours("bn", True), True, False),
        ("ours bn train channels_last bf16", "bn", lambda: ours("bn", True), True, True),
        ("ours paper train channels_last fp32", "paper", lambda: ours("paper", True), True, False),
    ]
    rows = []
    steps = [train_step_runner(make(), batch, size, channels_last, bf16)
             for _, _, make, channels_last, bf16 in cases]
    for (name, variant, _, _, bf16), seconds in zip(
            cases, interleaved_medians(steps, config.warmup, config.repeats)):
        rows.append(BenchRow(name, "training", batch, seconds, training_macs(variant, size),
                             note="bf16 autocast" if bf16 else "", precision="bf16" if bf16 else "fp32"))
        log(f"{name}: {batch / seconds:.1f} images/s")
    return rows


# --- The run -----------------------------------------------------------------------------


def add_ratios(rows: list[BenchRow], ceiling_gflops: float, int8_ceiling_gops: float) -> None:
    """Ratios against the first row of each (task, batch), which is the baseline, and each row's
    share of its precision's ceiling (bf16 rows against fp32's: no bf16 ceiling is measured)."""
    baselines: dict[tuple[str, int], BenchRow] = {}
    for row in rows:
        base = baselines.setdefault((row.task, row.batch), row)
        row.ratio = row.images_per_second / base.images_per_second
        ceiling = int8_ceiling_gops if row.precision == "int8" else ceiling_gflops
        row.ceiling_fraction = row.images_per_second * row.macs_per_image * 2 / (ceiling * 1e9)


def run_bench(config: BenchConfig, log: Callable[[str], None] = lambda _: None) -> BenchReport:
    torch.set_num_threads(config.threads)
    ceiling = matmul_ceiling_gflops(config.ceiling_size)
    log(f"fp32 matmul ceiling: {ceiling:.1f} GFLOP/s")
    int8_ceiling = int8_matmul_ceiling_gops(config.ceiling_size, config.threads)
    log(f"int8 matmul ceiling: {int8_ceiling:.1f} GOP/s")
    with tempfile.TemporaryDirectory(prefix="googlenet-bench-") as folder:
        paths = onnx_models(config, Path(folder), log)
        rows = bench_inference(config, paths, log)
    rows += bench_training(config, log)
    add_ratios(rows, ceiling, int8_ceiling)
    return BenchReport(config, machine_info(config.threads), ceiling, rows, int8_ceiling)


def render_bench(report: BenchReport, fmt: str = "text") -> str:
    headers = ["model", "task", "batch", "images/s", "latency ms", "vs baseline", "of ceiling", "note"]
    rows = [[r.name, r.task, str(r.batch), f"{r.images_per_second:.1f}",
             f"{r.latency_ms:.1f}" if r.batch == 1 else "", f"{r.ratio:.2f}x",
             f"{100 * r.ceiling_fraction:.1f}%", r.note] for r in report.rows]
    c, m = report.config, report.machine
    header = (f"{m['cpu']}, {m['cpus']} CPUs, {m['threads']} threads, torch {m['torch']}, "
              f"onnxruntime {m['onnxruntime']}, openvino {m['openvino']}; {c.input_size}x{c.input_size}, "
              f"median of {c.repeats} after {c.warmup} warm-up; matmul ceilings: fp32 "
              f"{report.ceiling_gflops:.1f} GFLOP/s, int8 {report.int8_ceiling_gops:.1f} GOP/s")
    return header + "\n\n" + render_table(headers, rows, fmt)


def report_dict(report: BenchReport) -> dict:
    rows = [{**asdict(r), "latency_ms": r.latency_ms} for r in report.rows]
    return {"config": asdict(report.config), "machine": report.machine,
            "ceiling_gflops": report.ceiling_gflops, "int8_ceiling_gops": report.int8_ceiling_gops,
            "rows": rows}

