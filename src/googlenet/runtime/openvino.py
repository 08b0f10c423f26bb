"""OpenVINO's runtime, one per process, and the thread's signal stack kept safe from it.

OpenVINO's CPU plugin, when a Core first loads it (the first compile_model or CPU property),
installs an alternate signal stack of its own on the calling thread, and when that Core is
destroyed it frees the stack and puts back the one it found. Two Cores destroyed in the order
they were made (ours and NNCF's, or two backends) leave the thread pointing at the first
Core's freed stack; the next signal with a Python handler on that thread (SIGINT, SIGCHLD when
a child process exits, ...) then kills the process with SIGSEGV: the kernel cannot write the
handler's frame. This crashed the test suite in `mount`'s subprocess after the OpenVINO tests.

Two guards: one Core for the whole process (OpenVINO's advice anyway: a Core is costly to
make), and after every call that can load the plugin the thread's own stack is put back
(`signal_stack_kept`), so OpenVINO's is never the one in use when it is freed.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from googlenet.extras import require_extra


class StackT(ctypes.Structure):
    """Linux's stack_t (sigaltstack(2)); other systems order the fields differently."""

    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@functools.cache
def libc() -> ctypes.CDLL | None:
    return ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def signal_stack() -> StackT | None:
    """The calling thread's alternate signal stack (None where this is not Linux)."""
    if libc() is None:
        return None
    current = StackT()
    libc().sigaltstack(None, ctypes.byref(current))
    return current


@contextmanager
def signal_stack_kept() -> Iterator[None]:
    """Whatever the block does, the thread leaves it with the signal stack it entered with."""
    saved = signal_stack()
    try:
        yield
    finally:
        if saved is not None:
            libc().sigaltstack(ctypes.byref(saved), None)


@functools.cache
def core() -> Any:  # openvino.Core; the import stays lazy (an optional dependency)
    require_extra("openvino", "OpenVINO")
    import openvino as ov

    return ov.Core()


def compile_model(model: Any, config: dict[str, object]) -> Any:
    """`model` (an ov.Model or a path) compiled for the CPU on the process's Core."""
    with signal_stack_kept():
        return core().compile_model(model, "CPU", config)
