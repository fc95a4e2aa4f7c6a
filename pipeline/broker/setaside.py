"""Broker items set aside: what no worker could decode or accept, kept for an operator.

An item in a queue list that is not a message (not UTF-8, not JSON, not a
kombu envelope), or a message Celery refuses (pickle, a body it cannot
decode, an unknown format or task), is never run and never silently dropped:
it is pushed, as one JSON record, onto the list ``{pipeline}:set_aside``
(newest first, at most ``pipeline_set_aside_max`` records) and counted per
reason in the hash ``{pipeline}:set_aside:count`` (``total`` counts them all).
The worker goes on with the next message. Read them with :func:`items` and
:func:`counts`, forget them with :func:`purge`.

A record::

    {"at": 1795702026.7, "queue": "pipeline", "reason": "not JSON",
     "raw": "<the item as it was>", "encoding": "utf-8", "size": 11}

``encoding`` is ``base64`` when the item was not UTF-8 text.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.keys import Keys
from pipeline.messages.events import MAINTENANCE, emit
from pipeline.runtime.services import Services

logger = logging.getLogger(__name__)

#: Items kept when nothing else is configured (older ones are trimmed; the counts go on).
DEFAULT_MAX = 10_000
TOTAL = "total"


@dataclass(frozen=True)
class SetAside:
    """One item set aside.

    Attributes:
        at: when it was set aside (seconds since the epoch).
        queue: the queue (or list) it came from.
        reason: why it was refused, in words.
        raw: the item as it was: text, or base64 when it was not UTF-8.
        encoding: ``utf-8`` or ``base64``.
        size: its length in bytes.
    """

    at: float
    queue: str
    reason: str
    raw: str
    encoding: str
    size: int

    def content(self) -> bytes:
        """The item's bytes as they were in the queue."""
        if self.encoding == "base64":
            return base64.b64decode(self.raw)
        return self.raw.encode("utf-8")


def record_for(raw: bytes | str, queue: str, reason: str) -> str:
    """The JSON record of *raw* (the item as it came out of the queue)."""
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(data).decode("ascii"), "base64"
    return json.dumps({"at": round(time.time(), 3), "queue": queue, "reason": reason,
                       "raw": text, "encoding": encoding, "size": len(data)},
                      separators=(",", ":"))


def set_aside(client: Any, keys: Keys, raw: bytes | str, *, queue: str, reason: str,
              limit: int = DEFAULT_MAX, events_maxlen: int = 1_000_000) -> None:
    """Keep *raw* in the set-aside list, count it, and write a ``maintenance`` event.

    Args:
        client: a redis-py client on the broker's Redis (no key prefixing).
        keys: the pipeline's key names.
        raw: the item as it came out of the queue.
        queue: where it came from.
        reason: why it was refused.
        limit: records kept in the list (the oldest are trimmed).
        events_maxlen: cap of the event stream.

    Raises:
        redis.RedisError: the record could not be written (the caller logs the item).
    """
    pipe = client.pipeline(transaction=True)
    pipe.lpush(keys.set_aside, record_for(raw, queue, reason))
    pipe.ltrim(keys.set_aside, 0, max(limit, 1) - 1)
    pipe.hincrby(keys.set_aside_count, reason, 1)
    pipe.hincrby(keys.set_aside_count, TOTAL, 1)
    emit(pipe, keys.events, MAINTENANCE, "",
         {"action": "set_aside", "reason": f"{reason} (from queue {queue})", "count": 1},
         maxlen=events_maxlen)
    pipe.execute()
    logger.error("set aside an item of queue %s (%s, %d bytes) in %s: the worker goes on",
                 queue, reason, len(raw), keys.set_aside)


def set_aside_or_log(client: Any, keys: Keys, raw: bytes | str, *, queue: str, reason: str,
                     limit: int = DEFAULT_MAX) -> bool:
    """:func:`set_aside`, logging the item itself when Redis refuses the write.

    Returns:
        Whether the item was kept in Redis.
    """
    try:
        set_aside(client, keys, raw, queue=queue, reason=reason, limit=limit)
    except Exception:  # the item is out of the queue already: the log is all that is left
        logger.critical("could not set aside an item of queue %s (%s); the item was: %r",
                        queue, reason, raw[:4096], exc_info=True)
        return False
    return True


def _decode(entry: Any) -> SetAside:
    # The scripts write records too (a park record that is none): their text may hold any byte.
    text = entry.decode("utf-8", "replace") if isinstance(entry, bytes) else str(entry)
    data = json.loads(text)
    return SetAside(at=float(data.get("at", 0)), queue=str(data.get("queue", "")),
                    reason=str(data.get("reason", "")), raw=str(data.get("raw", "")),
                    encoding=str(data.get("encoding", "utf-8")), size=int(data.get("size", 0)))


def items(services: Services, limit: int = 100) -> list[SetAside]:
    """The items set aside, newest first (at most *limit*; 0 = all kept)."""
    entries = services.redis.lrange(services.keys.set_aside, 0, limit - 1)
    return [_decode(entry) for entry in entries]


def counts(services: Services) -> dict[str, int]:
    """Items set aside per reason since the counts were last purged (``total`` included)."""
    raw: Mapping[Any, Any] = services.redis.hgetall(services.keys.set_aside_count)
    return {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in raw.items()}


def purge(services: Services) -> int:
    """Forget every item set aside and its counts; returns how many items were kept."""
    pipe = services.redis.pipeline(transaction=True)
    pipe.llen(services.keys.set_aside)
    pipe.delete(services.keys.set_aside, services.keys.set_aside_count)
    kept, _ = pipe.execute()
    return int(kept)
