"""Maintenance off the job queue: beat's sweeps run in the workers' main processes.

Beat stays the schedule (``pipeline.sweep`` every 5 s, ``pipeline.purge_queue_log``
hourly), but its messages go to a queue of their own,
:data:`MAINTENANCE_QUEUE` (``pipeline.maintenance``), with an ``expires`` of
one period. No pool process consumes that queue: :class:`Sweeper`, a
consumer step of every worker, takes each message in the worker's main
process and runs the task in a thread of its own, one at a time. So a sweep

* never waits for a pool process, whatever the jobs are doing;
* is not a job: ``status``, the dashboard and the metrics count the job
  queue's lists only, and ``flush``, ``cancel`` and ``reprioritize`` never see it;
* never piles up: a message that arrives while the worker still sweeps, or
  past its ``expires`` (a worker that was busy starting, beat running while
  no worker did), is dropped, and a starting worker drops the backlog.

Why this way and not a consumer process of its own: every worker runs it, so
there is nothing more to deploy, start or watch (``celery worker`` alone has
it); and not a timer in each worker: beat remains the one schedule (SPEC 6),
and every sweep is safe on several workers at once anyway.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Any

from celery import bootsteps
from kombu import entity, messaging

logger = logging.getLogger(__name__)
# kombu is untyped: its classes are used as Any.
Queue: Any = entity.Queue
Exchange: Any = entity.Exchange
Consumer: Any = messaging.Consumer
MAINTENANCE_QUEUE = "pipeline.maintenance"


def maintenance_queue() -> Any:
    """The queue beat sends maintenance to (as Celery creates a missing queue: direct)."""
    return Queue(MAINTENANCE_QUEUE, Exchange(MAINTENANCE_QUEUE, type="direct"),
                 routing_key=MAINTENANCE_QUEUE)


def expired(headers: dict[str, Any], now: datetime | None = None) -> bool:
    """Whether a task message's ``expires`` (ISO 8601) has passed."""
    raw = headers.get("expires")
    if not raw:
        return False
    try:
        when = datetime.fromisoformat(str(raw))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when <= (now or datetime.now(timezone.utc))


class Sweeper(bootsteps.ConsumerStep):  # type: ignore[misc]
    """Runs beat's maintenance messages in the worker's main process, one at a time."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.app = parent.app
        self._busy = threading.Lock()
        self.ran = 0
        self.dropped = 0

    def get_consumers(self, channel: Any) -> list[Any]:
        """One consumer on the maintenance queue, without acks: a lost sweep is the next one."""
        queue = maintenance_queue()(channel)
        queue.declare()
        try:
            dropped = queue.purge() or 0
            if dropped:
                logger.info("maintenance: %d sweep(s) sent while no worker ran dropped", dropped)
        except Exception:  # a backlog left is dropped one by one as expired
            logger.debug("maintenance: could not drop the backlog", exc_info=True)
        return [Consumer(channel, queues=[queue], callbacks=[self.on_message],
                         accept=["json"], no_ack=True)]

    def on_message(self, body: Any, message: Any) -> None:
        """Run the task the message names in a thread, unless it is late or one still runs."""
        headers = dict(message.headers or {})
        name = headers.get("task")
        task = self.app.tasks.get(name) if isinstance(name, str) else None
        if task is None or not isinstance(body, list | tuple) or len(body) < 2:
            logger.warning("maintenance: dropped a message that is no maintenance task (%r)",
                           name)
            return
        if expired(headers) or not self._busy.acquire(blocking=False):
            self.dropped += 1
            return
        args, kwargs = list(body[0] or ()), dict(body[1] or {})
        threading.Thread(target=self._run, args=(task, args, kwargs),
                         name=f"pipeline-{name}", daemon=True).start()

    def _run(self, task: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
        try:
            task.run(*args, **kwargs)
            self.ran += 1
        except Exception:  # the next period tries again
            logger.exception("maintenance task %s failed", task.name)
        finally:
            self._busy.release()
