"""The stored message of a job: a kombu Redis message, kept to be published again.

A job that cannot get its locks is parked with its message (``acquire.lua``);
the release that hands it its locks pushes that message to the front of its
queue's most urgent list, inside the same Lua call, so the hand-off never
waits for the broker or a poller. A dead letter keeps its message the same
way, to be requeued.
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery
from kombu.utils.json import dumps as _kombu_dumps

from pipeline.messages.context import JobContext


def dumps(value: Any) -> str:
    """Compact JSON as kombu writes it (dates, UUIDs and decimals included)."""
    return str(_kombu_dumps(value, separators=(",", ":")))  # type: ignore[no-untyped-call]


def message_for(app: Celery, request: JobContext, priority: int, *, retries: int | None = None,
                complete: bool = True, headers: dict[str, Any] | None = None) -> str:
    """Rebuild the message of the job being run, for republishing (see :func:`envelope`).

    *headers* replaces the request's own extra headers (the pipeline's among them).
    """
    delivery = request.delivery_info or {}
    time_limit, soft_limit = (request.timelimit or (None, None))
    stamped = list(getattr(request, "stamped_headers", None) or ())
    stamps = getattr(request, "stamps", None) or {}
    message = app.amqp.as_task_v2(
        request.id, request.task, request.args, request.kwargs,
        eta=request.eta, expires=request.expires, group_id=request.group,
        group_index=request.group_index,
        retries=(request.retries or 0) if retries is None else retries, chord=request.chord,
        callbacks=request.callbacks, errbacks=request.errbacks, reply_to=request.reply_to,
        time_limit=time_limit, soft_time_limit=soft_limit, root_id=request.root_id,
        parent_id=request.parent_id, shadow=request.shadow, chain=request.chain,
        origin=request.origin, ignore_result=bool(request.ignore_result),
        argsrepr="", kwargsrepr="",
        replaced_task_nesting=request.replaced_task_nesting or 0,
        stamped_headers=stamped or None, **{name: stamps.get(name) for name in stamped},
    )
    return envelope(without_task_defaults(app, message.headers), message.body, priority,
                    delivery.get("routing_key") or app.conf.task_default_queue,
                    request.headers if headers is None else headers,
                    reply_to=request.reply_to or "", complete=complete)


def without_task_defaults(app: Celery, headers: dict[str, Any]) -> dict[str, Any]:
    """*headers* without ``ignore_result`` where it equals the task's own option.

    The worker falls back to the task's option when the header is absent.
    """
    task = app.tasks.get(headers.get("task") or "")
    if task is None or headers.get("ignore_result") != bool(task.ignore_result):
        return headers
    return {k: v for k, v in headers.items() if k != "ignore_result"}


#: Header values Celery's worker reads as the default when they are absent.
_DEFAULTS: dict[str, Any] = {"retries": 0, "timelimit": [None, None], "argsrepr": "()",
                             "kwargsrepr": "{}"}
#: Headers kept even at their default: Celery writes them on every message and a
#: ``task_received`` handler may read them from the request's headers.
_ALWAYS = frozenset({"replaced_task_nesting"})


def _kept(key: str, value: Any) -> bool:
    if key in _ALWAYS:
        return value is not None
    if value is None or value == "" or value == [] or value == {}:
        return False
    default = _DEFAULTS.get(key, _DEFAULTS)
    return not (value == default and type(value) is type(default))


def envelope(headers: dict[str, Any], body: Any, priority: int, routing_key: str,
             extra_headers: dict[str, Any] | None = None, *, reply_to: str = "",
             complete: bool = True) -> str:
    """A kombu Redis message (as its transport stores it) for Celery *headers* and *body*.

    Kept small, since a parked job keeps it in Redis: compact JSON; the body as
    plain JSON (kombu reads it as is when ``body_encoding`` is absent), its
    empty options dropped; headers and properties left out where the worker
    reads the same default. With ``complete=False`` the correlation id and
    delivery tag are left out too: the script that hands the job its locks
    adds them (``deliverable`` in lib.lua).
    """
    kept = {k: v for k, v in headers.items() if _kept(k, v)}
    kept.update(extra_headers or {})
    properties: dict[str, Any] = {}
    if reply_to:
        properties["reply_to"] = reply_to
    properties["delivery_info"] = {"exchange": "", "routing_key": routing_key}
    properties["priority"] = priority
    if complete:
        properties["correlation_id"] = kept["id"]
        properties["delivery_tag"] = str(uuid.uuid4())
    if isinstance(body, (list, tuple)) and len(body) == 3 and isinstance(body[2], dict):
        body = [body[0], body[1], {k: v for k, v in body[2].items() if v is not None}]
    # No content-encoding: kombu reads a missing one as utf-8.
    return dumps({
        "body": dumps(body),
        "content-type": "application/json",
        "headers": kept,
        "properties": properties,
    })
