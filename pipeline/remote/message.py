"""A claimed job's broker message, read once: its call, its canvas, its Celery request.

The claim hands the API the message as the broker stored it (kombu's Redis
envelope around Celery's protocol 2). :class:`PoolMessage` decodes it and
gives what the routes need: the call an agent runs (task, args, kwargs), the
request Celery's result backend and canvas calls read (as a worker builds it
from the same message), and the message of the job's next attempt.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from celery.app.task import Context

from pipeline.errors import InvalidJobError
from pipeline.messages.envelope import dumps
from pipeline.messages.header import NAME, JobHeader
from pipeline.priority import DEFAULT_PRIORITY


@dataclass(frozen=True)
class PoolMessage:
    """One pool job's message.

    Attributes:
        raw: the message as the broker stored it.
        headers: Celery's headers (id, task, retries, root_id...; the pipeline's among them).
        properties: kombu's properties (priority, delivery_info, reply_to...).
        args: the call's positional arguments.
        kwargs: the call's keyword arguments.
        embed: Celery's canvas of the call: callbacks, errbacks, chain, chord.
    """

    raw: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    args: list[Any]
    kwargs: dict[str, Any]
    embed: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def decode(cls, raw: str) -> PoolMessage:
        """Read a stored message.

        Raises:
            InvalidJobError: it is not a JSON task message of Celery's protocol 2.
        """
        try:
            message = json.loads(raw)
            headers, properties = message["headers"], message.get("properties") or {}
            if message.get("content-type") != "application/json":
                raise InvalidJobError(f"content-type={message.get('content-type')!r} is not "
                                      "accepted: messages are JSON only")
            body = message["body"]
            if properties.get("body_encoding") == "base64":
                body = base64.b64decode(body).decode("utf-8")
            args, kwargs, embed = json.loads(body)
        except InvalidJobError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidJobError(f"message={raw[:200]!r} is not accepted: expected a JSON "
                                  f"task message of Celery's protocol 2 ({exc})") from None
        if not isinstance(headers, dict) or not isinstance(headers.get("id"), str):
            raise InvalidJobError(f"message={raw[:200]!r} is not accepted: it has no job id")
        return cls(raw, headers, properties, list(args or ()), dict(kwargs or {}),
                   dict(embed or {}))

    @property
    def id(self) -> str:
        """The job id."""
        return str(self.headers["id"])

    @property
    def task(self) -> str:
        """The task name."""
        return str(self.headers.get("task") or "")

    @property
    def retries(self) -> int:
        """Attempts before this one."""
        return int(self.headers.get("retries") or 0)

    @property
    def priority(self) -> int:
        """The priority it was published at (0 most urgent)."""
        value = self.properties.get("priority")
        return int(DEFAULT_PRIORITY) if value is None else int(value)

    @property
    def header(self) -> JobHeader:
        """The pipeline's header (resources, workflow, pool)."""
        return JobHeader.decode(self.headers.get(NAME))

    @property
    def queue(self) -> str:
        """The broker queue it was published to (its pool's)."""
        return str((self.properties.get("delivery_info") or {}).get("routing_key") or "")

    def request(self, hostname: str, ignore_result: bool = False) -> Context:
        """The request a worker would build from this message (Celery's ``Context``).

        Celery's result backend reads it to store the outcome (``result_extended``:
        name, args, worker), to count a chord's parts and to call errbacks; the
        canvas continues from its ``callbacks`` and ``chain``.
        """
        fields: dict[str, Any] = dict(self.headers)
        fields.update(self.embed)
        fields.update(
            args=self.args, kwargs=self.kwargs, hostname=hostname, is_eager=False,
            called_directly=False, properties=self.properties,
            reply_to=self.properties.get("reply_to"),
            correlation_id=self.properties.get("correlation_id"),
            delivery_info={"exchange": (self.properties.get("delivery_info") or {})
                           .get("exchange"), "routing_key": self.queue,
                           "priority": self.priority, "redelivered": False})
        if fields.get("ignore_result") is None:
            fields["ignore_result"] = ignore_result
        return Context(fields)

    def next_attempt(self) -> str:
        """The message of the job's next attempt: one more retry counted, a new delivery tag."""
        message = json.loads(self.raw)
        message["headers"]["retries"] = self.retries + 1
        message["properties"]["delivery_tag"] = str(uuid.uuid4())
        return dumps(message)
