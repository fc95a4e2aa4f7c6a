"""A job id from what an operator typed: the whole id, or a unique prefix of it.

Screens cut ids to fit (the monitor shows ``508bc1b1-b15…``); every command and
route that takes a job id passes it through :func:`resolve_job_id` first, so
the cut id works wherever the whole one does. Candidates come from the places
that index jobs without a scan of every key: live holds, parked jobs, dead
letters and the job store (an indexed ``LIKE 'prefix%'``). A prefix that
matches several jobs is an error listing them; one that matches none is given
back unchanged, so the command says the id is unknown in its own words.
"""

from __future__ import annotations

import logging

import redis
from sqlalchemy.exc import SQLAlchemyError

from pipeline.errors import AmbiguousJobError, PipelineError
from pipeline.runtime.services import Services

logger = logging.getLogger(__name__)

#: How many matches an ambiguous prefix lists.
SHOWN = 10
#: The length of a whole job id (a UUID): no lookup is needed.
WHOLE = 36


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _live_matches(services: Services, prefix: str) -> set[str]:
    """Ids starting with *prefix* among live holds, parked jobs and dead letters."""
    client, keys = services.redis, services.keys
    pattern = prefix.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?") \
        .replace("[", "\\[") + "*"
    found: set[str] = set()
    for key in (keys.holders, keys.dead_letters):
        found.update(_text(member) for member, _ in client.zscan_iter(key, match=pattern))
    for entry in client.lrange(keys.parked_order, 0, -1):
        job_id = _text(entry).partition("|")[2]
        if job_id.startswith(prefix):
            found.add(job_id)
    return found


def _stored_matches(services: Services, prefix: str, limit: int) -> set[str]:
    """Ids starting with *prefix* in the job store (none when it is disabled)."""
    settings = services.settings
    if not settings.store_enabled:
        return set()
    from sqlalchemy import select

    from pipeline.store.models import Job
    from pipeline.store.session import session_scope

    with session_scope(settings.store_url) as session:
        rows = session.scalars(
            select(Job.id).where(Job.id.startswith(prefix, autoescape=True))
            .order_by(Job.id).limit(limit + 1))
        return set(rows)


def matching_ids(services: Services, prefix: str, limit: int = SHOWN) -> tuple[list[str], bool]:
    """The ids starting with *prefix* (sorted, at most *limit*), and whether there are more.

    Redis or the store failing only narrows the search (the other still answers).
    """
    matches: set[str] = set()
    try:
        matches |= _live_matches(services, prefix)
    except redis.RedisError as exc:
        logger.debug("job id prefix %r: Redis not read (%s)", prefix, exc)
    try:
        matches |= _stored_matches(services, prefix, limit)
    except (PipelineError, SQLAlchemyError, OSError) as exc:
        logger.debug("job id prefix %r: job store not read (%s)", prefix, exc)
    ordered = sorted(matches)
    return ordered[:limit], len(ordered) > limit


def resolve_job_id(services: Services, text: str) -> str:
    """The job id *text* stands for: itself when whole, else the one id it starts.

    A trailing ``…`` (the mark of an id a screen cut) is ignored.

    Raises:
        AmbiguousJobError: *text* starts several ids (naming them, up to ten).
    """
    typed = text.strip().rstrip("…")  # a cut id copied from a screen, its mark included
    if not typed:
        return text  # nothing to look up: the caller refuses it in its own words
    text = typed
    if len(text) >= WHOLE:
        return text
    listed, more_ids = matching_ids(services, text)
    if text in listed or not listed:
        return text
    if len(listed) == 1:
        return listed[0]
    more = " and more" if more_ids else ""
    raise AmbiguousJobError(
        f"job id prefix {text!r} is ambiguous: it starts {', '.join(listed)}{more}; "
        "give more characters")


def resolve_job_ids(services: Services, texts: list[str] | tuple[str, ...]) -> list[str]:
    """:func:`resolve_job_id` of each."""
    return [resolve_job_id(services, text) for text in texts]
