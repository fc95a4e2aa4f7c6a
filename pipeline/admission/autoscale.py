"""An optional Celery autoscaler that follows the allocation's recommendation.

Use it with ``worker_autoscaler = "pipeline.admission.autoscale:LoadAwareAutoscaler"``
and ``--autoscale MAX,MIN``. Like ``pipeline agents allocate`` it sizes the pool
so the jobs the worker holds use at most 80 % of its processes, and it never
grows the pool while the load gate keeps the worker from taking jobs (more
processes would only load a host that is over its limit already).
"""

from __future__ import annotations

from typing import Any

from celery.worker import state
from celery.worker.autoscale import Autoscaler

from pipeline.admission.allocation import processes_for


class LoadAwareAutoscaler(Autoscaler):  # type: ignore[misc]
    """Celery's autoscaler with the pipeline's target: at most 80 % of the processes busy."""

    def _over_limit(self) -> bool:
        consumer = getattr(self.worker, "consumer", None)
        gate = getattr(consumer, "pipeline_load_gate", None)
        monitor = getattr(gate, "monitor", None)
        return bool(monitor is not None and monitor.wants_pause)

    @property
    def qty(self) -> int:
        """The processes wanted: jobs in hand / 0.8, never more than now while over a limit."""
        wanted = processes_for(len(state.reserved_requests))
        if self._over_limit():
            return int(min(wanted, self.processes))
        return wanted

    def info(self) -> dict[str, Any]:
        """Celery's autoscaler info, plus whether the host is over its load limit."""
        found: dict[str, Any] = super().info()
        found["over_load_limit"] = self._over_limit()
        return found
