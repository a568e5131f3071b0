"""Prometheus metrics of one server (its own registry, so several apps in one process, as in
the tests, do not collide)."""

from __future__ import annotations

from m3vdb.errors import MissingDependencyError

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("prometheus-client", "serve", "m3vdb serve") from exc

_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_TOKENS = (16, 64, 256, 1024, 4096, 16384, 65536, 262144)
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServeMetrics:
    """Requests, tokens, batch sizes, queue depth and latency, in the text format Prometheus
    scrapes (``GET /metrics``)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "m3vdb_requests", "HTTP requests answered", ["route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "m3vdb_request_duration_seconds",
            "time from a request's arrival to its answer",
            ["route"],
            buckets=_SECONDS,
            registry=r,
        )
        self.inputs = Counter("m3vdb_inputs", "texts encoded", ["route"], registry=r)
        self.input_tokens = Counter(
            "m3vdb_input_tokens",
            "tokens of the texts encoded (special tokens included)",
            registry=r,
        )
        self.batch_size = Histogram(
            "m3vdb_batch_size", "texts per forward pass", buckets=_SIZES, registry=r
        )
        self.batch_tokens = Histogram(
            "m3vdb_batch_tokens", "real tokens per forward pass", buckets=_TOKENS, registry=r
        )
        self.batch_seconds = Histogram(
            "m3vdb_batch_duration_seconds", "time of one forward pass", buckets=_SECONDS, registry=r
        )
        self.queue_depth = Gauge("m3vdb_queue_depth", "texts waiting for a batch", registry=r)
        self.pending_inputs = Gauge(
            "m3vdb_pending_inputs", "texts admitted and not yet answered", registry=r
        )
        self.dropped_inputs = Counter(
            "m3vdb_dropped_inputs", "texts dropped because their client went away", registry=r
        )
        self.rejected = Counter(
            "m3vdb_rejected_requests", "requests refused, by reason", ["reason"], registry=r
        )

    def observe_batch(self, texts: int, tokens: int, seconds: float) -> None:
        """One forward pass of ``texts`` texts holding ``tokens`` real tokens."""
        self.batch_size.observe(texts)
        self.batch_tokens.observe(tokens)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
