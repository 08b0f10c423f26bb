"""Timing on a machine that may be shared: medians of calls timed in interleaved rounds, the
matrix-multiply ceilings a speed is judged against (fp32 and int8, measured in the same run),
and a description of the machine."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch


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
