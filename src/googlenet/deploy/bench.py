"""`googlenet bench`: inference and training throughput against torchvision, in one process and one run.

Every figure is the median of several timed repetitions after warm-up, and is reported
as a ratio against a baseline measured in the same run (torchvision's googlenet in
eager mode: inference at the same batch size, and its training step), plus the
multiply-add rate it achieves as a fraction of the machine's matrix-multiply ceiling
for its precision, also measured in the same run (fp32: torch.mm; int8: ONNX Runtime's
MatMulInteger, u8 x s8, the kernels its int8 convolutions use). Weights are random (speed does not depend on
them); the int8 models are calibrated on generated images, so the bench says nothing
about their accuracy (`googlenet quantize` measures that).

Here: what is measured (the cases), the run, and the report; timing.py times and measures the
ceilings, zoo.py builds the models, their exported files and the calls that time them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from googlenet.deploy.export import inference_model
from googlenet.deploy.timing import (
    int8_matmul_ceiling_gops,
    interleaved_medians,
    machine_info,
    matmul_ceiling_gflops,
    openvino_version,
)
from googlenet.deploy.zoo import (
    Backend,
    Runner,
    compiled_runner,
    exported_models,
    file_runner,
    forward_macs,
    ours,
    torch_runner,
    torchvision_googlenet,
    train_step_runner,
    training_macs,
)
from googlenet.formatting import render_table

Precision = Literal["fp32", "int8", "bf16"]  # which ceiling a row is judged against
Task = Literal["inference", "training"]


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
    tasks: tuple[Task, ...] = ("inference", "training")

    @staticmethod
    def quick(**overrides) -> BenchConfig:
        """Small inputs, few repetitions and no torch.compile (whose compilation alone took
        minutes on some machines): every other row, in about a minute on 2 cores."""
        base = dict(input_size=64, batch_sizes=(1, 4), train_batch=4, warmup=1, repeats=2,
                    calibration_images=4, ceiling_size=512, compile=False)
        return BenchConfig(**{**base, **overrides})


@dataclass(frozen=True)
class Case:
    """One row to time. `make` builds the call that is timed (so a model is built only when its
    batch comes); the other fields label the row and choose its ceiling: `name` is only shown."""
    name: str
    variant: str  # whose multiply-adds the row is credited with: "bn" | "paper"
    make: Callable[[], Runner]
    precision: Precision = "fp32"
    backend: Backend = "torch"
    note: str = ""


@dataclass
class BenchRow:
    name: str
    task: Task
    batch: int
    seconds: float  # median time of one call (one batch)
    macs_per_image: int  # multiply-adds per image (training: forward + backward, aux heads included)
    images_per_second: float = 0.0
    ratio: float = 0.0  # against the baseline of the same task and batch size
    ceiling_fraction: float = 0.0  # achieved multiply-add rate / measured matmul ceiling
    note: str = ""
    precision: Precision = "fp32"  # which ceiling the row is judged against

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


# --- The cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedCase:
    """A row that times one of zoo.exported_models' files, where that file was made."""
    name: str
    file: str  # its key in exported_models' paths
    variant: str
    precision: Precision
    backend: Backend
    note: str


EXPORTED_CASES = (
    ExportedCase("ORT fp32 ours bn", "bn", "bn", "fp32", "onnxruntime", "BN folded"),
    ExportedCase("ORT fp32 ours paper", "paper", "paper", "fp32", "onnxruntime", "LRN as FastLRN's ops"),
    ExportedCase("ORT fp32 torchvision", "tv", "bn", "fp32", "onnxruntime", "its own export"),
    ExportedCase("ORT int8 ours bn", "bn-int8", "bn", "int8", "onnxruntime", "QDQ per-channel u8s8"),
    ExportedCase("ORT int8 ours paper", "paper-int8", "paper", "int8", "onnxruntime",
                 "QDQ per-channel u8s8, LRN fp32"),
    ExportedCase("ORT int8 torchvision", "tv-int8", "bn", "int8", "onnxruntime", "quantized the same way"),
    ExportedCase("ORT int8 torchvision, ORT's op set", "tv-int8-ort-ops", "bn", "int8", "onnxruntime",
                 "QDQ per-channel, quantize_static's default op types"),
    ExportedCase("OpenVINO fp32 ours bn", "ov-bn", "bn", "fp32", "openvino", "IR, f32 precision hint"),
    ExportedCase("OpenVINO fp32 ours paper", "ov-paper", "paper", "fp32", "openvino",
                 "IR, LRN as one operator"),
    ExportedCase("OpenVINO fp32 torchvision", "ov-tv", "bn", "fp32", "openvino",
                 "converted from its ONNX export"),
    ExportedCase("OpenVINO int8 ours bn", "ov-bn-int8", "bn", "int8", "openvino", "NNCF"),
    ExportedCase("OpenVINO int8 ours paper", "ov-paper-int8", "paper", "int8", "openvino", "NNCF, LRN fp32"),
    ExportedCase("OpenVINO int8 torchvision", "ov-tv-int8", "bn", "int8", "openvino",
                 "NNCF, the same settings"),
)


def inference_cases(config: BenchConfig, paths: dict[str, Path], batch: int) -> list[Case]:
    """The first is the baseline; the exported files' rows only where their files were made."""
    size = config.input_size
    cases = [
        Case("torchvision eager", "bn", lambda: torch_runner(torchvision_googlenet(False), batch, size)),
        Case("ours bn eager", "bn", lambda: torch_runner(ours("bn"), batch, size)),
        Case("ours paper eager", "paper", lambda: torch_runner(ours("paper"), batch, size)),
        Case("ours bn channels_last", "bn", lambda: torch_runner(ours("bn"), batch, size, True)),
        Case("ours bn channels_last folded", "bn",
             lambda: torch_runner(inference_model(ours("bn")), batch, size, True), note="BN folded"),
    ]
    if config.compile:
        cases.append(Case("ours bn torch.compile", "bn", lambda: compiled_runner(batch, size),
                          note="channels_last, BN folded, inductor"))
    cases += [Case(e.name, e.variant, partial(file_runner, e.backend, paths[e.file], batch, size,
                                              config.threads), e.precision, e.backend, e.note)
              for e in EXPORTED_CASES if e.file in paths]
    return cases


def training_cases(config: BenchConfig) -> list[Case]:
    """The first is the baseline; bf16 rows train under autocast."""
    size, batch = config.input_size, config.train_batch

    def case(name: str, variant: str, model: Callable[[], nn.Module], channels_last: bool,
             precision: Precision = "fp32") -> Case:
        bf16 = precision == "bf16"
        return Case(name, variant, lambda: train_step_runner(model(), batch, size, channels_last, bf16),
                    precision, note="bf16 autocast" if bf16 else "")

    return [
        case("torchvision train NCHW fp32", "bn", lambda: torchvision_googlenet(True), False),
        case("ours bn train NCHW fp32", "bn", lambda: ours("bn", True), False),
        case("ours bn train channels_last fp32", "bn", lambda: ours("bn", True), True),
        case("ours bn train channels_last bf16", "bn", lambda: ours("bn", True), True, "bf16"),
        case("ours paper train channels_last fp32", "paper", lambda: ours("paper", True), True),
        case("ours paper train channels_last bf16", "paper", lambda: ours("paper", True), True, "bf16"),
    ]


# --- The run -----------------------------------------------------------------------------


def time_cases(cases: Sequence[Case], task: Task, batch: int, macs_per_image: Callable[[str], int],
               config: BenchConfig) -> list[BenchRow]:
    """One row per case, its fields (precision, note) carried over: timed together, interleaved."""
    runners = [case.make() for case in cases]
    seconds = interleaved_medians(runners, config.warmup, config.repeats)
    return [BenchRow(case.name, task, batch, s, macs_per_image(case.variant), note=case.note,
                     precision=case.precision) for case, s in zip(cases, seconds)]


def bench_inference(config: BenchConfig, paths: dict[str, Path],
                    log: Callable[[str], None]) -> list[BenchRow]:
    rows = []
    for batch in config.batch_sizes:
        timed = time_cases(inference_cases(config, paths, batch), "inference", batch,
                           lambda variant: forward_macs(variant, config.input_size), config)
        for row in timed:
            log(f"{row.name}, batch {batch}: {row.images_per_second:.1f} images/s")
        rows += timed
    return rows


def bench_training(config: BenchConfig, log: Callable[[str], None]) -> list[BenchRow]:
    rows = time_cases(training_cases(config), "training", config.train_batch,
                      lambda variant: training_macs(variant, config.input_size), config)
    for row in rows:
        log(f"{row.name}: {row.images_per_second:.1f} images/s")
    return rows


def run_bench(config: BenchConfig, log: Callable[[str], None] = lambda _: None) -> BenchReport:
    torch.set_num_threads(config.threads)
    ceiling = matmul_ceiling_gflops(config.ceiling_size)
    log(f"fp32 matmul ceiling: {ceiling:.1f} GFLOP/s")
    int8_ceiling = int8_matmul_ceiling_gops(config.ceiling_size, config.threads)
    log(f"int8 matmul ceiling: {int8_ceiling:.1f} GOP/s")
    rows: list[BenchRow] = []
    if "inference" in config.tasks:
        with tempfile.TemporaryDirectory(prefix="googlenet-bench-") as folder:
            paths = exported_models(Path(folder), config.input_size, config.calibration_images,
                                    bool(config.openvino and openvino_version()), log)
            rows += bench_inference(config, paths, log)
    if "training" in config.tasks:
        rows += bench_training(config, log)
    add_ratios(rows, ceiling, int8_ceiling)
    return BenchReport(config, machine_info(config.threads), ceiling, rows, int8_ceiling)


# --- The report --------------------------------------------------------------------------


def add_ratios(rows: list[BenchRow], ceiling_gflops: float, int8_ceiling_gops: float) -> None:
    """Ratios against the first row of each (task, batch), which is the baseline, and each row's
    share of its precision's ceiling (bf16 rows against fp32's: no bf16 ceiling is measured)."""
    baselines: dict[tuple[str, int], BenchRow] = {}
    for row in rows:
        base = baselines.setdefault((row.task, row.batch), row)
        row.ratio = row.images_per_second / base.images_per_second
        ceiling = int8_ceiling_gops if row.precision == "int8" else ceiling_gflops
        row.ceiling_fraction = row.images_per_second * row.macs_per_image * 2 / (ceiling * 1e9)


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
