"""Ending a hold: the one function every caller releases a job's locks through.

The release script (``locks/lua/release.lua``) frees the hold's resources and
hands them to the parked jobs that can now run, in the same call. The job's
own end (:mod:`pipeline.job.finishing`), a dead pool process, a retry that
could not be published, a stale hold found at start, an operator's cancel or
flush: each goes through :func:`release_hold`, which rides out a Redis outage.
"""

from __future__ import annotations

from typing import Any

from pipeline.job.outage import OUTAGE_ERRORS, ride_out
from pipeline.locks.protocols import HotPath
from pipeline.messages.events import compact_json


def release_hold(locks: HotPath, holder: str, job_id: str, *, event: str = "",
                 detail: dict[str, Any] | None = None, keep_seconds: float = 0.0,
                 token: int | None = None, wait: bool = True, limit: float | None = None,
                 backoff: tuple[float, ...] | None = None) -> None:
    """End (or keep *keep_seconds* longer) *holder*'s hold as job *job_id* leaves it.

    Args:
        locks: the lock engine's hot path.
        holder: the hold (the job's id, or its workflow's).
        job_id: the job leaving it (its owner or a guest).
        event: the job event to write with it (``completed``, ``released``...), if any.
        detail: the event's detail.
        keep_seconds: keep the hold that long (a workflow between steps).
        token: end only the grant with this fencing token (a late release of an
            earlier run changes nothing).
        wait: wait for Redis's reply. Without waiting, Redis runs the release
            as soon as it reads it, and the reply is read before this thread's
            next lock call.
        limit: ride out an outage for about this many seconds (a finished job:
            ``pipeline_redis_outage_limit``) instead of the default backoff.
        backoff: the waits between tries instead (``()``: one try).

    A call that meets an outage is made again until Redis answers (about 8 s):
    a call sent without waiting is kept by the engine and sent first on its
    next connection, so it is repeated without its event (a release of a hold
    that is gone frees nothing); a call that waited is repeated as it was.

    Raises:
        redis.ConnectionError, redis.TimeoutError, OSError: Redis stayed away
        past the backoff; the hold's lease frees its resources.
    """
    text = compact_json(detail) if detail is not None else "{}"
    try:
        locks.release(holder, job_id, event=event, detail=text, keep_seconds=keep_seconds,
                      wait=wait, token=token)
        return
    except OUTAGE_ERRORS:
        if wait:
            def again() -> Any:
                return locks.release(holder, job_id, event=event, detail=text,
                                     keep_seconds=keep_seconds, token=token)
        else:
            def again() -> Any:
                return locks.release(holder, job_id, keep_seconds=keep_seconds, token=token)
    ride_out(again, what=f"releasing job {job_id}", limit=limit, backoff=backoff)
