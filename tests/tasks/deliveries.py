"""Counts every job a pool process is handed (Celery's ``task_prerun``, sent before
``before_start``), in the hash ``probe:prerun`` (job id -> deliveries) on the
broker's Redis. A worker imports it with ``-I tests.tasks.deliveries``."""

from __future__ import annotations

from typing import Any

from celery.signals import task_prerun

from tests.tasks.probes import client

PRERUN_KEY = "probe:prerun"


def _count(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        client().hincrby(PRERUN_KEY, task_id, 1)


task_prerun.connect(_count, weak=False, dispatch_uid="tests.deliveries.prerun")
