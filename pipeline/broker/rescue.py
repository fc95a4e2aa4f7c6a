"""Rescue the jobs of silent workers: their taken messages go back to their queues.

Each worker's main process renews the messages it holds (:mod:`pipeline.broker.qos`),
so a message whose entry in the broker's ``unacked_index`` is older than the
visibility timeout belongs to a worker that died (or has been cut off that
long). kombu's own look (``restore_visible``) gives such messages back to their
queues from every consuming worker; the beat sweep does it too
(:func:`pipeline.actions.maintenance.sweep_once`), so it happens even when every worker
died, and counts them. kombu's mutex keeps two rescuers from restoring one
message twice.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis

logger = logging.getLogger(__name__)


def rescue_silent(app: Any, limit: int = 500) -> int:
    """Give back (at most *limit*) messages taken by workers silent past the visibility timeout.

    Returns:
        How many were given back.
    """
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        if not hasattr(channel, "unacked_index_key"):  # not a Redis transport
            return 0
        index = channel.global_keyprefix + channel.unacked_index_key
        cutoff = time.time() - float(channel.visibility_timeout)
        # A plain client (kombu's adds its key prefix to some commands only).
        client = redis.Redis(connection_pool=channel.pool)
        before = int(client.zcount(index, "-inf", cutoff))
        if not before:
            return 0
        due = list(client.zrangebyscore(index, "-inf", cutoff, start=0, num=limit))
        jobs = _jobs_of(client, channel.global_keyprefix + channel.unacked_key, due)
        channel.qos.restore_visible(num=limit, interval=1)
        after = int(client.zcount(index, "-inf", cutoff))
        left = set(client.zrangebyscore(index, "-inf", cutoff, start=0, num=limit))
        for tag, (job_id, task) in jobs.items():
            if tag not in left:
                logger.info("job %s (%s) rescued: its worker was silent past the visibility "
                            "timeout (%g s); its message is back in its queue", job_id, task,
                            float(channel.visibility_timeout))
        return max(before - after, 0)


def _jobs_of(client: redis.Redis, unacked: str, tags: list[Any]) -> dict[Any, tuple[str, str]]:
    """(job id, task) of each taken message in *tags*, for the log."""
    if not tags:
        return {}
    found = {}
    for tag, raw in zip(tags, client.hmget(unacked, tags), strict=True):
        if raw is None:
            continue
        try:
            headers = json.loads(raw)[0].get("headers") or {}
        except (TypeError, ValueError, IndexError, AttributeError):
            continue
        found[tag] = (str(headers.get("id", "?")), str(headers.get("task", "?")))
    return found
