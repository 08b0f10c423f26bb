"""The server's Prometheus metrics (prometheus-client), in a registry of their own."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
DISCONNECTED = "disconnected"  # the status label of a request whose client left before its answer


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("googlenet_requests", "Prediction requests, by HTTP status",
                                ["status"], registry=self.registry)
        self.latency = Histogram("googlenet_request_seconds", "Prediction request latency",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("googlenet_batch_images", "Images per forward pass",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_seconds = Histogram("googlenet_batch_seconds", "Seconds per forward pass",
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("googlenet_queue_depth", "Requests waiting for the model",
                                 registry=self.registry)

    def observe_request(self, status: int | None, seconds: float, depth: int) -> None:
        """`status` None: nothing was answered (the client went away)."""
        self.requests.labels(status=DISCONNECTED if status is None else str(status)).inc()
        self.latency.observe(seconds)
        self.queue_depth.set(depth)

    def observe_batch(self, images: int, seconds: float) -> None:
        self.batch_size.observe(images)
        self.batch_seconds.observe(seconds)

    def render(self, depth: int) -> tuple[bytes, str]:
        self.queue_depth.set(depth)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
