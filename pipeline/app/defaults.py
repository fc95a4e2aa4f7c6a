"""Default Celery configuration of the pipeline app, read from the environment.

The top-level ``celeryconfig.py`` of a checkout imports it; an installed
package without that file uses it as it is.

Environment:
    PIPELINE_BROKER_URL (or CELERY_BROKER_URL): the Redis broker. Unset means the
        embedded Redis that ``pipeline up`` / ``pipeline worker`` start under
        ``./.pipeline/``.
    PIPELINE_RESULT_BACKEND: the result backend; defaults to the broker.
    PIPELINE_DATABASE_URL: the job store (read by ``pipeline.conf``); defaults
        to SQLite under ``./.pipeline/``.
    PIPELINE_VISIBILITY_TIMEOUT: seconds a worker may stay silent before the
        messages it took are given to another worker (a killed worker's jobs);
        default 60.
    PIPELINE_<SETTING>: any declared ``pipeline_*`` setting, e.g.
        ``PIPELINE_LOCK_LEASE=60`` (see ``pipeline/conf.py``).
"""

from __future__ import annotations

import os

from pipeline.conf import from_environ
from pipeline.priority import PRIORITY_STEPS, Priority
from pipeline.runtime.broker import choose_broker

broker_url = choose_broker().url
result_backend = os.environ.get("PIPELINE_RESULT_BACKEND") or broker_url

# JSON only: a pickle message is refused by the worker and logged, never run.
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# Acknowledge after the task ran, so a worker killed mid-job does not lose it;
# a child killed by the OS puts the message back instead of failing it.
task_acks_late = True
task_reject_on_worker_lost = True
# One message per process slot: a worker never hoards jobs that an idle worker
# (or a more urgent job published later) should get.
worker_prefetch_multiplier = 1

# An unset priority on Redis means 0, the most urgent. Default to NORMAL so a
# plain .delay() queues behind critical and high jobs and FIFO among normal ones.
task_default_priority = int(Priority.NORMAL)
task_default_queue = os.environ.get("PIPELINE_QUEUE", "pipeline")

broker_transport_options = {
    # One Redis list per level: kombu floors priorities 0-9 onto these steps and
    # BRPOPs the lists in this order, so a critical job is always taken first.
    "priority_steps": list(PRIORITY_STEPS),
    # Consume queues in a fixed order instead of kombu's default round robin.
    "queue_order_strategy": "priority",
    # A message a worker took is redelivered once that worker has been silent
    # this long: how the jobs of a killed worker run again. The worker's main
    # process renews every message it holds (pipeline.broker.qos), so a long
    # job or a long countdown never reaches it; keep it above the lock lease,
    # so the rerun finds the dead run's locks gone.
    "visibility_timeout": int(os.environ.get("PIPELINE_VISIBILITY_TIMEOUT", "60")),
    # Look for such messages every 5 s (kombu's default looks every 100 s:
    # interval 10 x throttle 10); the look is one sorted-set range read.
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
}
result_backend_transport_options = {"visibility_timeout": 3600}

# A running job reads STARTED and a parked one BLOCKED in the result backend
# (AsyncResult(id).state), not PENDING: one more write per job that keeps its
# result (Celery skips it for ignore_result jobs).
task_track_started = True

# Flower and the recorder follow jobs through task events.
worker_send_task_events = True
task_send_sent_event = False
worker_hijack_root_logger = False
broker_connection_retry_on_startup = True
# A lost broker connection (Redis restarted, a network blip) leaves running jobs
# alone: they finish and acknowledge their messages on the new connection
# (pipeline.broker.qos). Celery's cancelling would revoke them for good.
worker_cancel_long_running_tasks_on_connection_loss = False
result_extended = True

# Every declared pipeline_* setting may come from a PIPELINE_<NAME> variable.
globals().update(from_environ(os.environ))
