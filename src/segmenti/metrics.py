"""Prometheus metrics of the process, served by `GET /metrics` (`observability.py`).

Defined once per process in prometheus-client's default registry. With several server
processes (`segmenti serve --workers N`) each process counts its own requests; setting
PROMETHEUS_MULTIPROC_DIR (done by `serve` when N > 1) makes prometheus-client keep the
values in files there, and `/metrics` then sums every process's values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "segmenti_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "segmenti_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_PROGRESS = Gauge(
    "segmenti_http_requests_in_progress",
    "HTTP requests being answered now.",
    multiprocess_mode="livesum",
)
SEGMENT_EVALUATION_SECONDS = Histogram(
    "segmenti_segment_evaluation_seconds",
    "Time spent evaluating filter segments: `contacts_changed` (contacts written, one or a "
    "batch, adjusting the counts of their user's segments) and `count_filter` (a segment "
    "counted from scratch).",
    ["operation"],
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
RATE_LIMITED = Counter(
    "segmenti_rate_limited_requests",
    "Requests refused with 429 by the per-API-key rate limit.",
)
IDEMPOTENT_REPLAYS = Counter(
    "segmenti_idempotent_replays",
    "Create requests answered from a stored Idempotency-Key result instead of running again.",
)

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def timing(histogram: Any) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.observe(time.perf_counter() - started)


def segment_evaluation(operation: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: observes the function's duration as segment evaluation `operation`."""
    histogram = SEGMENT_EVALUATION_SECONDS.labels(operation=operation)

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @wraps(function)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            with timing(histogram):
                return function(*args, **kwargs)

        return timed

    return decorate
