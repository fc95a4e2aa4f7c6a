"""Workers in the metrics: ``celery_worker_up`` and ``celery_worker_tasks_active``.

Each series comes from one place only, so a sum over every scraped target
never counts a worker twice: with ``pipeline_metrics_worker_port`` set, each
worker serves its own (:class:`OwnWorker`, started by :func:`install` in the
worker's main process); otherwise the API reports every worker from a
periodic ``inspect().active()`` (:class:`WorkerView`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from celery import bootsteps
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline import conf

log = logging.getLogger(__name__)
#: Ports tried after ``pipeline_metrics_worker_port`` when it is taken.
PORT_TRIES = 10


class WorkerView(Collector):
    """``celery_worker_up`` / ``celery_worker_tasks_active`` of every worker, from the API.

    Refreshed by :meth:`refresh` (a broadcast waiting *timeout* seconds), not on
    each scrape. Used when workers do not serve their own metrics.
    """

    def __init__(self, app: Any, timeout: float = 1.0) -> None:
        self.app = app
        self.timeout = timeout
        self.active: dict[str, int] = {}
        self.seen: set[str] = set()

    def refresh(self) -> None:
        """Ask every worker what it runs."""
        replies = self.app.control.inspect(timeout=self.timeout).active() or {}
        self.active = {host: len(jobs or []) for host, jobs in replies.items()}
        self.seen |= set(self.active)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Workers that answered the last broadcast are up; others seen before are down."""
        up = GaugeMetricFamily("celery_worker_up", "Whether the worker answered lately.",
                               labels=["hostname"])
        active = GaugeMetricFamily("celery_worker_tasks_active",
                                   "Tasks the worker is running.", labels=["hostname"])
        for host in sorted(self.seen):
            up.add_metric([host], 1 if host in self.active else 0)
            active.add_metric([host], self.active.get(host, 0))
        yield up
        yield active


class OwnWorker(Collector):
    """The worker serving the metrics: up, and how many tasks it runs now."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Read the worker's own state (its main process knows every running request)."""
        from celery.worker import state

        up = GaugeMetricFamily("celery_worker_up", "Whether the worker answered lately.",
                               labels=["hostname"])
        up.add_metric([self.hostname], 1)
        active = GaugeMetricFamily("celery_worker_tasks_active",
                                   "Tasks the worker is running.", labels=["hostname"])
        active.add_metric([self.hostname], len(state.active_requests))
        yield up
        yield active


def serve_worker_metrics(hostname: str, host: str, port: int) -> int | None:
    """Serve :class:`OwnWorker` on *port*, or on one of the next free ports; returns it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OwnWorker(hostname))
    for candidate in range(port, port + PORT_TRIES):
        try:
            start_http_server(candidate, addr=host, registry=registry)
        except OSError:
            continue
        log.info("worker %s serves /metrics on %s:%d", hostname, host, candidate)
        return candidate
    log.error("worker %s cannot serve /metrics: ports %d-%d on %s are taken", hostname, port,
              port + PORT_TRIES - 1, host)
    return None


class WorkerMetrics(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer bootstep: serve the worker's own ``/metrics`` once it starts.

    Only when ``pipeline_metrics_worker_port`` > 0. Listed by name in
    :data:`pipeline.app.install.WORKER_STEPS`, so nothing imports it but a worker.
    """

    label = "PipelineWorkerMetrics"

    def start(self, c: Any) -> None:
        """Start the metrics server of worker *c* (a consumer) if configured."""
        settings = conf.read(c.app.conf)
        if settings.metrics_worker_port > 0:
            serve_worker_metrics(c.hostname or "worker", settings.metrics_worker_host,
                                 settings.metrics_worker_port)
