"""pipeline: Celery jobs and workflows that declare the resources they need.

Public API::

    from pipeline import PipelineTask, Priority, workflow, explain

The release is declared once, here (``__version__``): ``pyproject.toml`` reads
it, so the wheel's metadata and ``pipeline --version`` (which reads that
metadata) cannot disagree. Releases follow semantic versioning;
``CHANGELOG.md`` says what each one changed.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any

from pipeline.actions import control, deadletters
from pipeline.errors import (
    AgentJobFailed,
    ConfigurationError,
    InvalidJobError,
    LockError,
    LockLost,
    LockNotAcquired,
    PipelineError,
    StoreError,
    StoreNotMigrated,
    WorkflowError,
)
from pipeline.job.fencing import fencing_tokens, lease_lost
from pipeline.job.task import PipelineTask
from pipeline.job.workflows import Workflow, workflow
from pipeline.locks.ticket import Explanation
from pipeline.priority import Priority, parse_priority
from pipeline.runtime.services import Services, services_for


def explain(job_id: str, app: Any = None) -> Explanation:
    """Whether a job is running, parked (behind what, at which position) or neither.

    Args:
        job_id: the Celery task id.
        app: the Celery app; the current app when omitted.
    """
    from celery import current_app

    return services_for(app or current_app).lock_reads.explain(job_id)


__all__ = [
    # tasks and workflows
    "PipelineTask",
    "Priority",
    "parse_priority",
    "fencing_tokens",
    "lease_lost",
    "workflow",
    "Workflow",
    # operator actions and queries: each takes the app's services_for(app)
    "services_for",
    "Services",
    "control",
    "deadletters",
    "explain",
    "Explanation",
    # errors
    "PipelineError",
    "ConfigurationError",
    "InvalidJobError",
    "LockError",
    "LockNotAcquired",
    "LockLost",
    "StoreError",
    "StoreNotMigrated",
    "WorkflowError",
    "AgentJobFailed",
    # the release
    "__version__",
]
