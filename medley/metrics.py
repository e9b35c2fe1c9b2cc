"""Prometheus metrics: what operators scrape from `GET /metrics` (API processes) and from a
worker's own port (`medley worker --metrics-port`).

Labels are bounded: route templates (never a path with ids in it), methods, status codes,
modalities and outcome statuses; no user or item ids.

Several API processes (`medley serve --workers N`) share one port, and a scrape reaches one of
them: `medley serve` then points PROMETHEUS_MULTIPROC_DIR at a fresh folder before any process
starts, every process writes its counters there, and the process answering a scrape sums them
all (prometheus-client's multiprocess mode). Values read at scrape time (queue depths, event
lag, the answer cache) come from the answering process's `Snapshot` callback.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from medley.metrics_env import MULTIPROC_ENV

CONTENT_TYPE = CONTENT_TYPE_LATEST

REQUESTS = Counter("medley_http_requests_total", "HTTP requests answered, by route template",
                   ["route", "method", "status"])
LATENCY = Histogram(
    "medley_http_request_duration_seconds", "Time to answer, by route template",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
EXTRACTIONS = Counter("medley_extractions_total",
                      "Extractions finished, by modality and outcome (ready, failed, ...)",
                      ["modality", "status"])
EXTRACTION_SECONDS = Histogram(
    "medley_extraction_seconds", "Extraction time per item, by modality", ["modality"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0))
# SQLite (the embedded default): each write's wait for its turn among this process's threads
# and how long it kept the turn (`medley.db.writers`); role: request or background.
_DB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0)
DB_WRITE_WAIT = Histogram("medley_db_write_wait_seconds",
                          "Time a database write waited for its turn (SQLite), by role",
                          ["role"], buckets=_DB_BUCKETS)
DB_WRITE_HOLD = Histogram("medley_db_write_hold_seconds",
                          "Time a database write kept its turn, first write to commit (SQLite), "
                          "by role", ["role"], buckets=_DB_BUCKETS)
EXPOSURES = Counter("medley_experiment_exposures_total",
                    "Answers served inside an experiment, by experiment id and arm",
                    ["experiment", "arm"])

# name -> (help, value) pairs read at scrape time, with optional labels: one (name, value)
# pair, or a tuple of them: {"medley_queue_depth": ("...", {("queue", "text"): 3.0})},
# {"medley_experiment_clicks": ("...", {(("experiment", "1"), ("arm", "b")): 12.0})}
Labels = tuple[str, str] | tuple[tuple[str, str], ...] | None
Snapshot = Callable[[], Mapping[str, tuple[str, Mapping[Any, float]]]]


def _pairs(key: Labels) -> tuple[tuple[str, str], ...]:
    if key is None:
        return ()
    if isinstance(key[0], str):
        return ((key[0], str(key[1])),)
    return tuple((str(pair[0]), str(pair[1])) for pair in key)


def extraction(modality: str, status: str, seconds: float | None) -> None:
    EXTRACTIONS.labels(modality, status).inc()
    if seconds is not None:
        EXTRACTION_SECONDS.labels(modality).observe(seconds)


def request(route: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route, method).observe(seconds)


class _Live(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, (text, values) in self.snapshot().items():
            names = sorted({label for k in values for label, _ in _pairs(k)})
            family = GaugeMetricFamily(name, text, labels=names or None)
            for key, value in values.items():
                given = dict(_pairs(key))
                family.add_metric([given.get(label, "") for label in names], value)
            yield family


def render(snapshot: Snapshot | None = None) -> bytes:
    """The exposition text: every process's counters (multiprocess mode) or this one's, then
    the scrape-time gauges of `snapshot` (distinct names: the two texts simply follow)."""
    counted: Any = REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        counted = CollectorRegistry()
        MultiProcessCollector(counted)
    text = bytes(generate_latest(counted))
    if snapshot is not None:
        live = CollectorRegistry()
        live.register(_Live(snapshot))
        text += bytes(generate_latest(live))
    return text


def serve_summed(port: int) -> None:
    """An HTTP endpoint (a thread of this process) with every process's counters summed: a
    worker's pool processes count, its main process answers the scrape."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    start_http_server(port, registry=registry)
