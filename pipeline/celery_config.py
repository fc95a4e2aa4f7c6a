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
    PIPELINE_VISIBILITY_TIMEOUT: seconds before kombu redelivers a message that
        was taken but never acknowledged (a killed worker's job); default 3600.
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
    # A message not acknowledged within this time (an hour) is redelivered: how
    # a job whose worker was killed runs again. Must exceed the longest job.
    # Locks do not depend on it: leases expire on their own.
    "visibility_timeout": int(os.environ.get("PIPELINE_VISIBILITY_TIMEOUT", "3600")),
    # Look for such messages every 10 s (kombu's default looks every 100 s:
    # interval 10 x throttle 10); the look is one sorted-set range read.
    "unacked_restore_interval": 10,
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
worker_cancel_long_running_tasks_on_connection_loss = True
result_extended = True

# Every declared pipeline_* setting may come from a PIPELINE_<NAME> variable.
globals().update(from_environ(os.environ))
