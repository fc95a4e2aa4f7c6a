"""The BLOCKED state in Celery's result backend, written without overtaking a later state.

A parked job may be handed its locks, start and finish within milliseconds,
before the process that parked it writes BLOCKED. On the Redis result backend
the write is one script that leaves a final state, or a STARTED written by
another process, alone; other backends get Celery's own ``store_result``
(which only spares SUCCESS).
"""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from typing import Any

from celery.backends.redis import RedisBackend

from pipeline.messages.context import JobContext

#: The Celery state of a parked job (its result meta holds the reason).
BLOCKED = "BLOCKED"


@cache
def _script(client: Any) -> Any:
    source = resources.files("pipeline.job").joinpath("blocked_state.lua").read_text("utf-8")
    return client.register_script(source)


def store_blocked(backend: Any, task_id: str, meta: dict[str, Any], request: JobContext) -> bool:
    """Record *task_id* as BLOCKED with *meta*; False if its stored state was newer."""
    if not isinstance(backend, RedisBackend):
        backend.store_result(task_id, meta, BLOCKED, request=request)
        return True
    full = backend._get_result_meta(result=backend.encode_result(meta, BLOCKED), state=BLOCKED,
                                    traceback=None, request=request)
    full["task_id"] = task_id
    expires = int(backend.expires or 0)
    return bool(_script(backend.client)(
        keys=[backend.get_key_for_task(task_id)],
        args=[backend.encode(full), expires, os.getpid(), getattr(request, "hostname", "") or ""]))
