"""A worker that starts again gives back at once what its predecessor of the same name held.

A worker stopped past its stop timeout (``pipeline up`` kills it after 10 s)
or killed outright leaves the messages it held in the broker's ``unacked``
hash; they come back only after the visibility timeout (a minute), and the
holds of its jobs only once their leases run out. Meanwhile ``show`` named a
dead process as running them.

Each worker's keeper (:class:`pipeline.broker.qos.Keeper`) writes which
messages the worker holds, with the host and pid of its main process, to
``{pipeline}:held_by:<node name>`` at every renewal and when the worker
starts to stop (:func:`record`). A worker starting under that name reads it
(:func:`give_back`): when the process it names is gone (same host, pid not
alive), each of those messages still taken is given back to its queue now,
the hold of its job (if its process is gone too) is released with the reason
"given back: its worker stopped", which the job's history shows, and the
delivery is counted (:mod:`pipeline.job.deliveries`: the attempt number
counts deliveries, and a job that keeps killing its worker is dead-lettered).
A predecessor on another host, or one still alive (two workers under one
name), is left to the visibility timeout.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from typing import Any

import redis

from pipeline.broker.rescue import rescue_silent
from pipeline.errors import InvalidJobError
from pipeline.keys import Keys
from pipeline.locks.ticket import HOLDING
from pipeline.messages.events import RELEASED, compact_json, emit
from pipeline.messages.header import NAME, JobHeader
from pipeline.runtime.processes import HOST, process_alive
from pipeline.runtime.services import Services

logger = logging.getLogger(__name__)
REASON = "given back: its worker stopped"
#: kombu's names of the taken-messages hash and its index (under ``global_keyprefix``).
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"
#: Seconds a count of deliveries is kept (as pipeline.job.deliveries keeps it).
KEEP_COUNT = 86_400


def record(client: redis.Redis, keys: Keys, worker: str, tags: Iterable[str],
           ttl: float) -> None:
    """Write that *worker* (its main process: this one) holds the messages *tags*."""
    key = keys.held_by(worker)
    pipe = client.pipeline(transaction=True)
    pipe.hset(key, mapping={"tags": json.dumps(sorted(tags)), "host": HOST,
                            "pid": os.getpid(), "at": time.time()})
    pipe.expire(key, max(int(ttl), 1))
    pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def give_back(services: Services, worker: str) -> list[str]:
    """Give back what the dead predecessor of *worker* held; returns the job ids given back."""
    client = services.redis
    key = services.keys.held_by(worker)
    found = {_text(k): _text(v) for k, v in client.hgetall(key).items()}
    if not found:
        return []
    host, pid = found.get("host", ""), found.get("pid", "0")
    if host == HOST and str(pid) == str(os.getpid()):
        return []
    alive = process_alive(host, pid)
    if alive is not False:
        logger.warning("worker %s: the process that last used this name (%s pid %s) %s; what "
                       "it holds comes back after the visibility timeout", worker, host, pid,
                       "still runs" if alive else "ran on another host")
        return []
    prefix = services.keys.broker_queue_prefix()
    given = []
    for tag in json.loads(found.get("tags") or "[]"):
        raw = client.hget(prefix + UNACKED, tag)
        if raw is None:  # settled before it died
            continue
        job_id = _give_back_one(services, json.loads(raw)[0])
        client.zadd(prefix + UNACKED_INDEX, {tag: 0}, xx=True)  # due now
        if job_id:
            given.append(job_id)
    client.delete(key)
    if given:
        rescue_silent(services.app)
        logger.warning("worker %s: %d job(s) its stopped predecessor (%s pid %s) held given "
                       "back: %s", worker, len(given), host, pid, ", ".join(given))
    return given


def _give_back_one(services: Services, message: dict[str, Any]) -> str | None:
    """Release the hold of the job of *message* (its process is gone), count the delivery."""
    headers = message.get("headers") or {}
    job_id = headers.get("id")
    if not isinstance(job_id, str):
        return None
    try:
        holder = JobHeader.decode(headers.get(NAME)).workflow or job_id
    except InvalidJobError:  # its worker would have failed it: nothing else to free
        holder = job_id
    detail = compact_json({"reason": REASON})
    hold = services.lock_reads.explain(job_id, holder)
    pipe = services.redis.pipeline(transaction=True)
    pipe.incr(services.keys.worker_lost(job_id))
    pipe.expire(services.keys.worker_lost(job_id), KEEP_COUNT)
    pipe.execute()
    if hold.status in HOLDING and process_alive(hold.host, hold.pid) is False:
        services.locks.release(holder, job_id, event=RELEASED, detail=detail)
    else:
        emit(services.redis, services.keys.events, RELEASED, job_id, {"reason": REASON},
             maxlen=services.settings.events_maxlen)
    logger.info("job %s (%s) given back: %s", job_id, headers.get("task"), REASON)
    return job_id
