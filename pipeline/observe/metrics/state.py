"""Gauges read from Redis on each scrape: their cost does not grow with parked jobs.

One pipelined round trip reads the queue lists' lengths, the parked-job
counters (``parked_counts`` / ``parked_by_kind``: hashes the lock scripts keep
current), the dead-letter index and the stream's length; ``RedisLockEngine.holds``
reads the live holds (one per running job or workflow, bounded by the global
capacity); the recorder's lag is read from its consumer group; and the single
longest-parked job is read for its age. No scan of parked jobs.

Every priority level and resource kind has its series, 0 when nothing is
parked or held, so a dashboard panel shows 0 rather than "No data".
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable, Iterator
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.broker.layout import queue_lists
from pipeline.keys import pool_queue
from pipeline.locks.records import HoldRecord
from pipeline.locks.resources import KINDS
from pipeline.priority import Priority, level_of
from pipeline.runtime.services import Services
from pipeline.store.recorder import GROUP as RECORDER_GROUP

PRIORITY_LABELS = tuple(p.label for p in Priority)


def text(value: Any) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def stream_ms(stream_id: Any) -> int:
    """The millisecond time part of a stream entry id."""
    return int(text(stream_id).partition("-")[0] or 0)


def kind_of(resource: str) -> str:
    """``user`` for ``user:alice``, ``global`` for ``global``."""
    return resource.partition(":")[0]


class StateCollector(Collector):
    """Gauges read from Redis on each scrape (see the module docstring for the cost).

    Args:
        services: the services of the Celery app.
        queues: queue names to report (the app's default queue when empty); every
            agent pool's queue is reported too.
    """

    def __init__(self, services: Services, queues: Iterable[str] = ()) -> None:
        self.services = services
        self.app = services.app
        self.queues = list(queues) or [self.app.conf.task_default_queue]
        self.store = services.settings.store_enabled

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Read the state and yield one family per metric."""
        services = self.services
        keys, client = services.keys, services.redis
        now_ms = time.time() * 1000
        pipe = client.pipeline(transaction=False)
        # Every agent pool's queue too (one read of the pools' set).
        pools = [pool_queue(p) for p in services.leases.pools()]
        queues = [*self.queues, *(q for q in pools if q not in self.queues)]
        lists = {queue: queue_lists(self.app, queue) for queue in queues}
        for names in lists.values():
            for name in names:
                pipe.llen(name)
        pipe.hgetall(keys.parked_count)
        pipe.hgetall(keys.parked_kinds)
        pipe.zcard(keys.dead_letters)
        pipe.xlen(keys.events)
        replies = pipe.execute()
        lengths = replies[: sum(len(n) for n in lists.values())]
        counts, kinds, dead, stream_length = replies[len(lengths):]

        queue_length = GaugeMetricFamily(
            "celery_queue_length", "The number of messages in the broker queue.",
            labels=["queue_name"])
        depth = GaugeMetricFamily(
            "pipeline_queue_depth", "Messages waiting in the broker, per priority level.",
            labels=["queue_name", "priority"])
        position = 0
        for queue in lists:
            total = 0
            for label in PRIORITY_LABELS:
                value = int(lengths[position])
                position += 1
                total += value
                depth.add_metric([queue, label], value)
            queue_length.add_metric([queue], total)
        yield queue_length
        yield depth
        yield from self._parked(counts, kinds)
        yield from self._locks(services.lock_reads.holds(), now_ms)
        yield GaugeMetricFamily("pipeline_dead_letters", "Dead-lettered jobs kept in Redis.",
                                value=int(dead))
        yield GaugeMetricFamily("pipeline_events_stream_length",
                                "Entries in the event stream (not yet trimmed).",
                                value=int(stream_length))
        yield from self._recorder(client, keys.events, now_ms)
        yield self._oldest_parked(services, now_ms)

    def _parked(self, counts: dict[Any, Any],
                kinds: dict[Any, Any]) -> Iterator[GaugeMetricFamily]:
        by_level = GaugeMetricFamily("pipeline_parked_jobs", "Parked jobs per priority level.",
                                     labels=["priority"])
        per_level = dict.fromkeys(PRIORITY_LABELS, 0)
        for raw, value in counts.items():
            level = int(text(raw))
            label = level_of(level).label
            per_level[label] += int(text(value))
        for label, value in per_level.items():
            by_level.add_metric([label], value)
        yield by_level
        by_kind = GaugeMetricFamily(
            "pipeline_parked_jobs_by_kind",
            "Parked jobs per kind of the first resource blocking them.",
            labels=["resource_kind"])
        per_kind = dict.fromkeys(KINDS, 0)
        for raw, value in kinds.items():
            per_kind[text(raw)] = per_kind.get(text(raw), 0) + int(text(value))
        for kind, value in per_kind.items():
            by_kind.add_metric([kind], value)
        yield by_kind

    def _locks(self, holds: list[HoldRecord], now_ms: float) -> Iterator[GaugeMetricFamily]:
        per_kind: collections.Counter[str] = collections.Counter(dict.fromkeys(KINDS, 0))
        for hold in holds:
            for claim in hold.claims:
                per_kind[kind_of(claim.resource)] += 1
        held = GaugeMetricFamily("pipeline_locks_held",
                                 "Resources held by running jobs, per resource kind.",
                                 labels=["kind"])
        for kind, value in sorted(per_kind.items()):
            held.add_metric([kind], value)
        yield held
        yield GaugeMetricFamily("pipeline_holds", "Live holds (running jobs and workflows).",
                                value=len(holds))
        now = now_ms / 1000
        overdue = [now - hold.expires for hold in holds if hold.expires < now]
        yield GaugeMetricFamily(
            "pipeline_holds_past_lease",
            "Holds whose lease deadline has passed and that no sweep has dropped yet.",
            value=len(overdue))
        yield GaugeMetricFamily(
            "pipeline_hold_past_lease_seconds",
            "How long the most overdue hold has been past its lease (0 if none).",
            value=max(overdue, default=0.0))

    def _recorder(self, client: redis.Redis, stream: str,
                  now_ms: float) -> Iterator[GaugeMetricFamily]:
        lag_events = GaugeMetricFamily(
            "pipeline_recorder_lag_events",
            "Events the recorder has not yet written (read but unacknowledged, or unread).")
        lag_seconds = GaugeMetricFamily(
            "pipeline_recorder_lag_seconds",
            "Age of the oldest event the recorder has not yet written (0 when caught up).")
        try:
            groups: Any = client.xinfo_groups(stream)
        except redis.ResponseError:  # no stream yet
            groups = []
        group = next((g for g in groups if text(g["name"]) == RECORDER_GROUP), None)
        if group is None:
            # No recorder has ever read the stream: with the store on, every event in it
            # is still to be written; with it off, none is expected to be.
            first: Any = client.xrange(stream, "-", "+", count=1) if self.store else []
            lag_events.add_metric([], int(client.xlen(stream)) if first else 0)
            lag_seconds.add_metric(
                [], max(0.0, now_ms - stream_ms(first[0][0])) / 1000 if first else 0.0)
            yield lag_events
            yield lag_seconds
            return
        pending = int(group.get("pending") or 0)
        unread = group.get("lag")
        oldest: int | None = None
        if pending:
            summary: Any = client.xpending(stream, RECORDER_GROUP)
            oldest = stream_ms(summary["min"])
        start = f"({text(group['last-delivered-id'])}"
        after: Any = client.xrange(stream, start, "+", count=1)
        if after:
            first_unread = stream_ms(after[0][0])
            oldest = first_unread if oldest is None else min(oldest, first_unread)
        if unread is None:  # Redis < 7 does not say: count what is left to read
            rest: Any = client.xrange(stream, start, "+", count=10_000)
            unread = len(rest)
        lag_events.add_metric([], pending + int(unread))
        lag_seconds.add_metric([], 0.0 if oldest is None else max(0.0, now_ms - oldest) / 1000)
        yield lag_events
        yield lag_seconds

    def _oldest_parked(self, services: Any, now_ms: float) -> GaugeMetricFamily:
        oldest = services.lock_reads.parked_jobs(1)
        parked_at = oldest[0].parked_at if oldest else None
        return GaugeMetricFamily(
            "pipeline_parked_oldest_seconds",
            "How long the longest-parked job has waited (0 if none is parked).",
            value=0.0 if parked_at is None else max(0.0, now_ms / 1000 - parked_at))
