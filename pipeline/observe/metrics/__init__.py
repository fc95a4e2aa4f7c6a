"""Prometheus metrics: celery-exporter's names where they exist, ``pipeline_`` for the rest.

Each metric has one source (details in each module):

* :mod:`pipeline.observe.metrics.state`: gauges read from Redis on each scrape (queue
  depth per priority, parked jobs per priority and per blocking resource kind,
  locks held per kind, holds past their lease, dead letters, recorder lag, the
  oldest parked job's age); their cost does not grow with parked jobs.
* :mod:`pipeline.observe.metrics.events`: counters and histograms of job events, read
  from the event stream (celery-exporter's task counters and runtime, lock wait
  time, hand-off latency, expired jobs, operator and maintenance actions).
* :mod:`pipeline.observe.metrics.workers`: worker up and active tasks, served by each
  worker itself or by the API.

:class:`Metrics` puts them together for the API's ``/metrics``.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from pipeline import conf
from pipeline.observe.metrics.events import EventCounter
from pipeline.observe.metrics.state import StateCollector
from pipeline.observe.metrics.workers import WorkerView
from pipeline.runtime.services import services_for

#: Seconds between two worker broadcasts of the API's :class:`WorkerView`.
WORKER_REFRESH = 15.0


class Metrics:
    """The registry the API serves, and the threads that keep its counters current.

    Args:
        app: the Celery app.
        worker_refresh: seconds between two ``inspect().active()`` broadcasts;
            0 never polls them. The worker series are served here only when
            workers do not serve their own (``pipeline_metrics_worker_port`` 0).
    """

    def __init__(self, app: Any, *, worker_refresh: float = WORKER_REFRESH) -> None:
        self.app = app
        services = services_for(app)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StateCollector(services))
        self.events = EventCounter(services, self.registry)
        self.workers: WorkerView | None = None
        if worker_refresh > 0:
            # Polled for the dashboard too; a metric only when workers do not serve their own.
            self.workers = WorkerView(app)
            if conf.read(app.conf).metrics_worker_port == 0:
                self.registry.register(self.workers)
        self.worker_refresh = worker_refresh
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start tailing the event stream (and polling workers)."""
        self._stop.clear()
        self._spawn("pipeline-metrics-events", self.events.run)
        if self.workers is not None:
            self._spawn("pipeline-metrics-workers", self._poll_workers)

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll_workers(self, stop: threading.Event) -> None:
        assert self.workers is not None
        while not stop.is_set():
            try:
                self.workers.refresh()
                self.events.known_hosts(self.workers.seen)
            except Exception as exc:  # a broker hiccup: keep the last answer
                import logging

                logging.getLogger(__name__).warning("metrics: worker poll failed: %s", exc)
            stop.wait(self.worker_refresh)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threads (the stream reader within its block time)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def render(self) -> bytes:
        """Every metric in Prometheus's text format."""
        return bytes(generate_latest(self.registry))


__all__ = ["EventCounter", "Metrics", "StateCollector", "WorkerView"]
