"""A job that does not run when delivered (parked, a duplicate, cancelled), and its logs.

``before_start`` raises :class:`NotRun` (a Celery ``Ignore``) so the worker
acknowledges the message without running the body. Celery logs every
``Ignore`` at INFO as ``Task NAME[ID] ignored``: for the pipeline's own that line
says nothing (a parked job was not ignored; the pipeline logs ``parked`` with its
reason), so :func:`quiet_celery_ignore` lowers that line to DEBUG for
:class:`NotRun` only. An ``Ignore`` a task raises itself is logged as before.
"""

from __future__ import annotations

import logging

from celery.exceptions import Ignore

#: Celery's tracer logger, which logs ``Task NAME[ID] ignored``.
TRACE_LOGGER = "celery.app.trace"

logger = logging.getLogger(__name__)


class NotRun(Ignore):  # type: ignore[misc]
    """The pipeline does not run the job now; the message says why (it is logged)."""


#: How Celery's tracer writes the exception (``safe_repr``) in its log record.
_MARK = f"{NotRun.__name__}("


class _LowerNotRun(logging.Filter):
    """Move Celery's ``ignored`` line of a :class:`NotRun` to DEBUG (on this module's logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        if not isinstance(data, dict) or not str(data.get("exc", "")).startswith(_MARK):
            return True
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(record.getMessage())
        return False


_FILTER = _LowerNotRun()


def quiet_celery_ignore() -> None:
    """Install the filter on Celery's tracer logger (once; safe to call again)."""
    trace = logging.getLogger(TRACE_LOGGER)
    if _FILTER not in trace.filters:
        trace.addFilter(_FILTER)
