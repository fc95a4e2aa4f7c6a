"""Read-only views of the running system, shared by the CLI, the monitor and the API.

Every function takes the Celery app and returns typed, frozen records with an
``as_dict()`` for JSON. None of them scans every parked job::

    from pipeline.observe import inspection

    inspection.status(services)            # one screen: depth, running, parked, locks, workers
    inspection.queue_depth(services)       # {"critical": 0, "high": 2, "normal": 40, "low": 3}
    inspection.running_jobs(services)      # every live hold
    inspection.parked_jobs(services, 20)   # the 20 parked longest, with their reason
    inspection.locks(services)             # every resource held, by whom, until when
    inspection.job_detail(services, id)    # one job: where, why not running, history
"""

from __future__ import annotations

from pipeline.observe.inspection.job import JobDetail, job_detail
from pipeline.observe.inspection.live import (
    LEVELS,
    LockHeld,
    ParkedJob,
    RunningJob,
    locks,
    parked_jobs,
    queue_depth,
    running_jobs,
)
from pipeline.observe.inspection.system import SystemStatus, WorkerSeen, load_level, status, workers

__all__ = [
    "LEVELS",
    "JobDetail",
    "LockHeld",
    "ParkedJob",
    "RunningJob",
    "SystemStatus",
    "WorkerSeen",
    "job_detail",
    "load_level",
    "locks",
    "parked_jobs",
    "queue_depth",
    "running_jobs",
    "status",
    "workers",
]
