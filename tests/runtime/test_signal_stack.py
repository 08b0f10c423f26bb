"""OpenVINO and the thread's signal stack (runtime/openvino.py).

The failure this guards against: two OpenVINO Cores destroyed in the order they were made
leave the thread on a freed signal stack, and the next Python signal handler kills the process
with SIGSEGV (it crashed `make test` in the first subprocess after the OpenVINO tests). Each
case runs in its own process, which must survive a signal after the Cores are gone.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("openvino")

SRC = Path(__file__).parents[2] / "src"

PROLOGUE = """
import faulthandler, gc, os, signal, sys
sys.path.insert(0, {src!r})
faulthandler.enable()  # as pytest does: a signal stack of Python's own on this thread
signal.signal(signal.SIGUSR1, lambda *args: print("handled"))
import numpy as np
import openvino as ov
parameter = ov.opset13.parameter([1, 3], np.float32)
model = ov.Model([ov.opset13.relu(parameter)], [parameter])
ov.save_model(model, {ir!r})
"""

EPILOGUE = """
gc.collect()
os.kill(os.getpid(), signal.SIGUSR1)  # delivered on the signal stack: it must still exist
"""


def survives_a_signal(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    script = (PROLOGUE.format(src=str(SRC), ir=str(tmp_path / "relu.xml")) + textwrap.dedent(body)
              + EPILOGUE)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def test_two_backends_destroyed_in_the_order_they_were_made(tmp_path):
    result = survives_a_signal(tmp_path, f"""
        from googlenet.inference.backends import OpenVinoBackend
        first = OpenVinoBackend({str(tmp_path / "relu.xml")!r})
        second = OpenVinoBackend({str(tmp_path / "relu.xml")!r})
        assert (second(__import__("torch").tensor([[-1.0, 0.0, 2.0]])) >= 0).all()
        del first
        gc.collect()
        del second
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "handled"


def test_cores_of_other_libraries_inside_the_guard(tmp_path):
    """What NNCF does during `quantize --engine openvino`: Cores of its own, made and dropped."""
    result = survives_a_signal(tmp_path, """
        from googlenet.runtime.openvino import signal_stack, signal_stack_kept
        before = signal_stack()
        with signal_stack_kept():
            first = ov.Core()
            first.compile_model(model, "CPU")
            second = ov.Core()
            second.compile_model(model, "CPU")
            del first
            gc.collect()
            del second
        after = signal_stack()
        assert (after.ss_sp, after.ss_size, after.ss_flags) == (before.ss_sp, before.ss_size,
                                                                before.ss_flags)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "handled"
