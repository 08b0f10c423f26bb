"""Dynamic batching: requests that arrive close together run as one forward pass.

The model runs on its own thread (PyTorch and ONNX Runtime release the GIL), so the
event loop stays responsive. The worker takes the first waiting request, then everything
else already queued (up to `max_batch`); it waits up to `max_wait_ms` for more only while
other requests are still being decoded. An idle server therefore never waits: a lone
request runs at once.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor


class QueueFull(Exception):
    """More requests are waiting than the queue holds (answered with 503)."""


@dataclass
class Job:
    views: Tensor  # N x V x 3 x S x S: the request's images, each as its crop views
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    queued: float = field(default_factory=time.perf_counter)


class Batcher:
    def __init__(self, run: Callable[[Tensor], Tensor], max_batch: int = 32, max_wait_ms: float = 5.0,
                 max_queue: int = 256, on_batch: Callable[[int, float], None] | None = None) -> None:
        """`run`: N x V x 3 x S x S views -> N x C probabilities. `on_batch(images, seconds)`
        after every forward pass (for metrics)."""
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait_ms / 1000
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self.on_batch = on_batch
        self.decoding = 0  # requests whose images are still being decoded
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.work, name="googlenet-model", daemon=True)
        self.thread.start()

    @property
    def depth(self) -> int:
        return self.jobs.qsize()

    def decode_started(self) -> None:
        with self.lock:
            self.decoding += 1

    def decode_finished(self) -> None:
        with self.lock:
            self.decoding -= 1

    async def submit(self, views: Tensor) -> Tensor:
        """The probabilities of `views`' images, once a batch has run them."""
        loop = asyncio.get_running_loop()
        job = Job(views, loop.create_future(), loop)
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            raise QueueFull(f"{self.jobs.maxsize} requests are waiting") from None
        return await job.future

    def collect(self, first: Job) -> list[Job]:
        batch, images = [first], len(first.views)
        deadline = time.perf_counter() + self.max_wait
        while images < self.max_batch:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                if self.decoding == 0 or time.perf_counter() >= deadline:
                    break  # nobody else is coming soon: run what there is
                time.sleep(0.0005)
                continue
            if job is None:
                self.jobs.put(None)  # let the loop see the stop after this batch
                break
            batch.append(job)
            images += len(job.views)
        return batch

    def work(self) -> None:
        while True:
            first = self.jobs.get()
            if first is None:
                return
            batch = [job for job in self.collect(first) if not job.future.done()]  # gone: skipped
            if not batch:
                continue
            start = time.perf_counter()
            try:
                probabilities = self.run(torch.cat([job.views for job in batch]))
            except Exception as error:
                for job in batch:
                    job.loop.call_soon_threadsafe(set_exception, job.future, error)
                continue
            if self.on_batch is not None:
                self.on_batch(sum(len(job.views) for job in batch), time.perf_counter() - start)
            offset = 0
            for job in batch:
                part = probabilities[offset:offset + len(job.views)]
                offset += len(job.views)
                job.loop.call_soon_threadsafe(set_result, job.future, part)

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=10)


def set_result(future: asyncio.Future, value: Tensor) -> None:
    if not future.done():  # cancelled meanwhile: the client went away or timed out
        future.set_result(value)


def set_exception(future: asyncio.Future, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
