"""Counts of job events: celery-exporter's task counters and the pipeline's own.

A thread tails the event stream ``{pipeline}:events`` with plain ``XREAD``
from the moment it starts. It is not a consumer group: it never holds back the
recorder's trim, so a metrics reader that stops can never make the stream
grow. The price: events the recorder trimmed before this reader saw them are
not counted; they are counted in ``pipeline_metrics_events_missed_total``
instead (from the stream's ``entries-added``, whenever the reader has caught
up).

Every series of a metric has real label values, and 0 is exported for the
values known in advance, so a dashboard panel shows 0 rather than "No data":
each event type, resource kind, operator and maintenance action; and, for the
task counters, each pipeline task of the app on each worker host seen (the
hosts come from :meth:`EventCounter.known_hosts`, fed by the API's worker poll,
and from the events). ``hostname`` is the worker host that parked or ran the
job, or, for ``sent`` and a job no worker has taken, the host that published
it. A job whose task or host neither its event, this reader nor the job store
knows (it predates this reader and the store is off) is counted in
``pipeline_events_total`` and ``pipeline_metrics_events_unlabelled_total``,
never under a made-up name.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram

from pipeline import conf
from pipeline.job.task import PipelineTask
from pipeline.locks.resources import KINDS
from pipeline.messages import events
from pipeline.observe.metrics.state import kind_of, text
from pipeline.runtime.services import Services

#: Finds a job's task and worker host elsewhere (the job store): (task, host), None unknown.
Lookup = Callable[[str], tuple[str | None, str | None]]

log = logging.getLogger(__name__)

#: Seconds: hand-offs take milliseconds, lock waits up to the wait timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   float("inf"))
WAIT_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))
#: Jobs whose name or first park is remembered to label or time later events.
MEMORY = 200_000
_EXCEPTION = re.compile(r"^(\w+)\(")


class EventCounter:
    """Counts job events from the stream into celery-exporter's and the pipeline's metrics.

    Celery's events map to the pipeline's: ``sent`` is ``queued``; ``received``
    is each delivery to a worker (``started`` or ``blocked``: a parked job is
    received again when its locks are handed to it, as Celery counts it);
    ``started``, ``succeeded`` (``completed``), ``failed`` (``failed`` and
    ``dead_lettered``: its last attempt failed), ``retried``, ``revoked``
    (``cancelled``) and ``rejected`` (``expired``: parked too long, refused).

    Args:
        app: the Celery app (its pipeline tasks get zero series).
        registry: where the metrics are registered.
        lookup: finds the task and host of a job this reader has not seen; by
            default the job store, when it is on.
    """

    def __init__(self, services: Services, registry: CollectorRegistry,
                 lookup: Lookup | None = None) -> None:
        self.services = services
        self.app = services.app
        self.queue = str(services.app.conf.task_default_queue)
        labels = ["name", "hostname", "queue_name"]
        self.celery = {
            kind: Counter(f"celery_task_{kind}", f"Tasks {kind} (from the pipeline's events).",
                          labels, registry=registry)
            for kind in ("sent", "received", "started", "succeeded", "retried", "rejected",
                         "revoked")
        }
        self.failed = Counter("celery_task_failed", "Tasks failed (their last attempt, or an "
                              "attempt that is retried no more).", [*labels, "exception"],
                              registry=registry)
        self.runtime = Histogram("celery_task_runtime", "Task runtime (started to finished).",
                                 labels, registry=registry)
        self.lock_wait = Histogram(
            "pipeline_lock_wait_seconds", "From a job's first park to its start.",
            ["name"], buckets=WAIT_BUCKETS, registry=registry)
        self.handoff = Histogram(
            "pipeline_handoff_latency_seconds",
            "From the release that handed a parked job its locks to its start.",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.by_type = Counter("pipeline_events", "Job events read, per type.", ["type"],
                               registry=registry)
        self.dead_lettered = Counter("pipeline_dead_lettered", "Jobs dead-lettered.", ["name"],
                                     registry=registry)
        self.expired = Counter("pipeline_jobs_expired",
                               "Parked jobs that expired (waited past pipeline_wait_timeout).",
                               ["name"], registry=registry)
        self.blocked = Counter("pipeline_jobs_blocked",
                               "Parks, per kind of the resource that blocked the job.",
                               ["resource_kind"], registry=registry)
        self.operator = Counter("pipeline_operator_actions", "Operator actions, per action.",
                                ["action"], registry=registry)
        self.maintenance = Counter("pipeline_maintenance_actions",
                                   "Maintenance actions, per action.", ["action"],
                                   registry=registry)
        self.maintenance_items = Counter(
            "pipeline_maintenance_items", "Things maintenance acted on (holds dropped, jobs "
            "expired or rescued...), per action.", ["action"], registry=registry)
        self.missed = Counter("pipeline_metrics_events_missed",
                              "Events trimmed from the stream before this reader saw them.",
                              registry=registry)
        self.unlabelled = Counter(
            "pipeline_metrics_events_unlabelled",
            "Job events left out of the task counters: nothing knew the job's task or host.",
            registry=registry)
        self._names: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._running: dict[str, tuple[str, int]] = {}
        self._first_parked: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._granted: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._hosts: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._lookup = lookup if lookup is not None else store_lookup(services.app)
        self._unfound: collections.OrderedDict[str, bool] = collections.OrderedDict()
        self._tasks: set[str] = set()
        self._seen_hosts: set[str] = set()
        self._zeros()
        self.cursor = "$"
        self._added_at_start: int | None = None
        self._read = 0

    # --- bookkeeping ------------------------------------------------------------------

    @staticmethod
    def _remember(memory: collections.OrderedDict[str, Any], key: str, value: Any) -> None:
        memory[key] = value
        if len(memory) > MEMORY:
            memory.popitem(last=False)

    def _zeros(self) -> None:
        """Create the series of every label value known in advance, at 0."""
        for event_type in sorted(events.EVENT_TYPES):
            self.by_type.labels(event_type)
        for kind in KINDS:
            self.blocked.labels(kind)
        for action in events.OPERATOR_ACTIONS:
            self.operator.labels(action)
        for action in events.MAINTENANCE_ACTIONS:
            self.maintenance.labels(action)
            self.maintenance_items.labels(action)
        for name in pipeline_tasks(self.app):
            self._task_seen(name)

    def _task_seen(self, name: str) -> None:
        if name in self._tasks:
            return
        self._tasks.add(name)
        self.lock_wait.labels(name)
        self.expired.labels(name)
        self.dead_lettered.labels(name)
        for host in self._seen_hosts:
            self._pair_zeros(name, host)

    def _pair_zeros(self, name: str, host: str) -> None:
        labels = (name, host, self.queue)
        for counter in self.celery.values():
            counter.labels(*labels)
        # "" is the exception of a failure whose error names no exception class.
        self.failed.labels(*labels, "")
        self.runtime.labels(*labels)

    def known_hosts(self, hosts: Iterable[str]) -> None:
        """Worker hosts seen (a worker's node name or its host): zero series for each task."""
        for host in hosts:
            host = host.rpartition("@")[2]
            if host and host not in self._seen_hosts:
                self._seen_hosts.add(host)
                for name in self._tasks:
                    self._pair_zeros(name, host)

    def _labels(self, job_id: str, host: str | None = None) -> tuple[str, str, str] | None:
        """(name, hostname, queue) of a job; None if its task or host cannot be found."""
        name, known_host = self._names.get(job_id), self._hosts.get(job_id)
        if (name is None or (known_host is None and not host)) and job_id not in self._unfound:
            found_name, found_host = self._lookup(job_id)
            if found_name is None or not found_host:
                self._remember(self._unfound, job_id, True)
            name = name or found_name
            known_host = known_host or found_host
            if name is not None:
                self._remember(self._names, job_id, name)
            if found_host:
                self._remember(self._hosts, job_id, found_host)
        host = host or known_host
        if name is None or not host:
            self.unlabelled.inc()
            return None
        self._task_seen(name)
        self.known_hosts([host])
        return (name, host, self.queue)

    def _ended(self, job_id: str, at_ms: int) -> tuple[str, str, str] | None:
        labels = self._labels(job_id)
        started = self._running.pop(job_id, None)
        if started is not None and labels is not None:
            self.runtime.labels(*labels).observe(max(0.0, (at_ms - started[1]) / 1000))
        return labels

    # --- counting ---------------------------------------------------------------------

    def count(self, event: events.JobEvent) -> None:
        """Count one event."""
        kind, job, detail, at = event.type, event.job_id, event.detail, event.time_ms
        self.by_type.labels(kind).inc()
        if isinstance(detail.get("task"), str):
            self._remember(self._names, job, detail["task"])
        host = detail.get("host") if isinstance(detail.get("host"), str) else None
        if kind == events.QUEUED:
            # The publisher's host labels the send; the job keeps it until a worker takes it.
            if host and job not in self._hosts:
                self._remember(self._hosts, job, host)
            self._inc(self.celery["sent"], self._labels(job, host))
        elif kind == events.BLOCKED:
            if host:
                self._remember(self._hosts, job, host)
            self._inc(self.celery["received"], self._labels(job))
            self._first_parked.setdefault(job, at)
            self.blocked.labels(kind_of(str(detail.get("resource", "")))).inc()
        elif kind == events.GRANTED:
            self._remember(self._granted, job, at)
        elif kind == events.STARTED:
            if host:
                self._remember(self._hosts, job, host)
            self._started(job, at)
        elif kind == events.COMPLETED:
            self._inc(self.celery["succeeded"], self._ended(job, at))
        elif kind in (events.FAILED, events.DEAD_LETTERED):
            labels = self._ended(job, at)
            match = _EXCEPTION.match(str(detail.get("error", "")))
            if labels is not None:
                self.failed.labels(*labels, match.group(1) if match else "").inc()
                if kind == events.DEAD_LETTERED:
                    self.dead_lettered.labels(labels[0]).inc()
        elif kind == events.RETRIED:
            self._inc(self.celery["retried"], self._ended(job, at))
        elif kind == events.CANCELLED:
            self._first_parked.pop(job, None)
            self._inc(self.celery["revoked"], self._ended(job, at))
        elif kind == events.EXPIRED:
            self._first_parked.pop(job, None)
            labels = self._labels(job)
            self._inc(self.celery["rejected"], labels)
            if labels is not None:
                self.expired.labels(labels[0]).inc()
        elif kind in (events.OPERATOR, events.MAINTENANCE):
            self._action(kind, detail)

    @staticmethod
    def _inc(counter: Counter, labels: tuple[str, str, str] | None) -> None:
        if labels is not None:
            counter.labels(*labels).inc()

    def _started(self, job: str, at: int) -> None:
        labels = self._labels(job)
        parked = self._first_parked.pop(job, None)
        granted = self._granted.pop(job, None)
        if granted is not None:
            self.handoff.observe(max(0.0, (at - granted) / 1000))
        if labels is None:
            return
        self.celery["received"].labels(*labels).inc()
        self.celery["started"].labels(*labels).inc()
        self._running[job] = (labels[0], at)
        if parked is not None:
            self.lock_wait.labels(labels[0]).observe(max(0.0, (at - parked) / 1000))

    def _action(self, kind: str, detail: dict[str, Any]) -> None:
        action = detail.get("action")
        if not isinstance(action, str) or not action:
            return
        if kind == events.OPERATOR:
            self.operator.labels(action).inc()
            return
        self.maintenance.labels(action).inc()
        count = detail.get("count")
        if isinstance(count, (int, float)) and count > 0:
            self.maintenance_items.labels(action).inc(count)

    # --- reading ----------------------------------------------------------------------

    def read_once(self, client: redis.Redis, stream: str, block_ms: int = 1000,
                  count: int = 1000) -> int:
        """Read and count the next entries (waiting up to *block_ms*); returns how many."""
        if self._added_at_start is None:
            self._start_cursor(client, stream)
        reply: Any = client.xread({stream: self.cursor}, count=count, block=block_ms)
        entries = reply[0][1] if reply else []
        for stream_id, fields in entries:
            self.cursor = text(stream_id)
            if fields:
                self.count(events.decode(stream_id, fields))
        self._read += len(entries)
        if len(entries) < count:
            self._check_missed(client, stream)
        return len(entries)

    def _start_cursor(self, client: redis.Redis, stream: str) -> None:
        try:
            info: Any = client.xinfo_stream(stream)
        except redis.ResponseError:  # no stream yet: everything from the beginning
            self.cursor, self._added_at_start = "0-0", 0
            return
        self.cursor = text(info["last-generated-id"])
        self._added_at_start = int(info.get("entries-added") or 0)

    def _check_missed(self, client: redis.Redis, stream: str) -> None:
        """When caught up, whatever was added but not read was trimmed unseen."""
        try:
            info: Any = client.xinfo_stream(stream)
        except redis.ResponseError:
            return
        added = info.get("entries-added")
        if added is None or text(info["last-generated-id"]) != self.cursor:
            return  # Redis < 7, or more arrived meanwhile: look again next time
        missed = int(added) - int(self._added_at_start or 0) - self._read
        if missed > 0:
            self.missed.inc(missed)
            self._read += missed

    def run(self, stop: threading.Event) -> None:
        """Read until *stop* is set; Redis errors are logged and retried."""
        services = self.services
        client = services.redis
        delay = 0.5
        while not stop.is_set():
            try:
                self.read_once(client, services.keys.events)
                delay = 0.5
            except redis.RedisError as exc:
                log.warning("metrics: event stream unreadable (retrying in %.1f s): %s",
                            delay, exc)
                stop.wait(delay)
                delay = min(delay * 2, 10.0)


def pipeline_tasks(app: Any) -> list[str]:
    """The names of the app's tasks that are pipeline jobs (their events are counted)."""
    return sorted(name for name, task in app.tasks.items() if isinstance(task, PipelineTask))


def store_lookup(app: Any) -> Lookup:
    """A :data:`Lookup` reading the job store (answers nothing when the store is off)."""
    settings = conf.read(app.conf)

    def lookup(job_id: str) -> tuple[str | None, str | None]:
        if not settings.store_enabled or not job_id:
            return None, None
        from sqlalchemy.exc import SQLAlchemyError

        from pipeline.store.models import Job
        from pipeline.store.session import session_scope

        try:
            with session_scope(settings.store_url) as session:
                job = session.get(Job, job_id)
                return (job.task, job.worker_host) if job is not None else (None, None)
        except SQLAlchemyError as exc:
            log.debug("metrics: the job store cannot name job %s: %s", job_id, exc)
            return None, None

    return lookup
