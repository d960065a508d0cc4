"""Prometheus metrics of one prediction server, in a registry of its own (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServerMetrics:
    """Requests by route and status, latency, rows predicted, errors, batch sizes."""

    def __init__(self, model: str, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"model": model, "version": version}
        r = self.registry
        self.requests = Counter("fixative_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=r)
        self.latency = Histogram("fixative_request_duration_seconds",
                                 "Whole-request latency by route", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.rows = Counter("fixative_rows_predicted", "Input rows predicted by route",
                            ["route"], registry=r)
        self.errors = Counter("fixative_errors", "Failed requests by route and error code",
                              ["route", "code"], registry=r)
        self.batch_rows = Histogram("fixative_batch_rows", "Rows per model call",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_requests = Histogram("fixative_batch_requests", "Requests per model call",
                                        buckets=BATCH_BUCKETS, registry=r)
        info = Counter("fixative_model_info", "The model version this server serves (always 1)",
                       list(labels), registry=r)
        info.labels(**labels).inc()

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, n_requests: int, n_rows: int) -> None:
        self.batch_requests.observe(n_requests)
        self.batch_rows.observe(n_rows)

    def render(self) -> bytes:
        return generate_latest(self.registry)
