"""The worker's consumer: messages Celery refuses are set aside, not dropped.

Celery's consumer acknowledges (drops) a message it cannot use and logs it: a
body it cannot decode, content it does not accept (a pickle message when only
JSON is accepted), an unknown message format, a task this worker does not
know. :class:`PipelineConsumer` keeps a copy of each in the set-aside list
first (:mod:`pipeline.broker.setaside`), then lets Celery log and drop it as
before. :func:`pipeline.app.install.install` makes it the app's ``worker_consumer``.
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any

from celery.exceptions import CPendingDeprecationWarning
from celery.worker.consumer import Consumer
from kombu.exceptions import ContentDisallowed

from pipeline.broker import predecessor
from pipeline.broker.qos import keeper
from pipeline.broker.setaside import set_aside_or_log
from pipeline.runtime.services import services_for

logger = logging.getLogger(__name__)

CONTENT_REFUSED = "content type not accepted"
BODY_UNDECODABLE = "body not decodable"
UNKNOWN_FORMAT = "unknown message format"
UNKNOWN_TASK = "unknown task"
INVALID_TASK = "invalid task message"


def raw_of(message: Any) -> bytes | str:
    """The message as the broker stored it (kombu's virtual transports keep it)."""
    raw = getattr(message, "_raw", None)
    if isinstance(raw, dict):
        return json.dumps(raw, separators=(",", ":"), default=str)
    body = getattr(message, "body", b"")
    return body if isinstance(body, bytes | str) else repr(body)


class PipelineConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, setting aside every message it would drop as unusable.

    It also writes which messages the worker holds, and gives back at start
    what a stopped predecessor of the same name held
    (:mod:`pipeline.broker.predecessor`).
    """

    _predecessor_checked = False

    def start(self) -> Any:
        """Give back what a stopped predecessor of this name held, then consume."""
        if not self._predecessor_checked:
            self._predecessor_checked = True
            services = services_for(self.app)
            ttl = float((self.app.conf.broker_transport_options or {}).get(
                "visibility_timeout", 3600)) * 3
            keeper().recorder = lambda tags: predecessor.record(
                services.redis, services.keys, self.hostname, tags, ttl)
            try:
                predecessor.give_back(services, self.hostname)
            except Exception:  # Redis away: the visibility timeout brings them back
                logger.exception("could not give back what the last worker named %s held",
                                 self.hostname)
        return super().start()

    def stop(self) -> Any:
        """Record what this worker still holds before it stops consuming (see start)."""
        try:
            keeper().beat()
        except Exception:  # stopping must go on
            logger.exception("could not record the messages this worker holds")
        return super().stop()

    def set_aside(self, message: Any, reason: str) -> None:
        """Keep a copy of *message* in the set-aside list (never raises)."""
        services = services_for(self.app)
        queue = (getattr(message, "delivery_info", None) or {}).get("routing_key") or "?"
        set_aside_or_log(services.redis, services.keys, raw_of(message), queue=str(queue),
                         reason=reason, limit=services.settings.set_aside_max)

    def _refuse(self, message: Any, reason: str, handler: Any, *args: Any) -> None:
        """Set *message* aside, then let Celery's *handler* log and drop it.

        Celery's handlers can fail on what they are handed (an unknown task
        with an empty id fails while its failure is recorded): the message is
        settled here then, and the worker goes on.
        """
        self.set_aside(message, reason)
        try:
            handler(*args)
        except Exception:
            logger.exception("Celery could not handle a refused message (set aside as %r); "
                             "it is dropped from the queue", reason)
            if not message.acknowledged:
                message.reject_log_error(logger, self.connection_errors)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        """A body Celery cannot decode or does not accept."""
        reason = CONTENT_REFUSED if isinstance(exc, ContentDisallowed) else BODY_UNDECODABLE
        self._refuse(message, reason, super().on_decode_error, message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        """A message that is no Celery task message."""
        self._refuse(message, UNKNOWN_FORMAT, super().on_unknown_message, body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        """A task this worker does not know (another worker may: requeue it from the list)."""
        self._refuse(message, UNKNOWN_TASK, super().on_unknown_task, body, message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        """A task message Celery cannot use (a pickle body among them)."""
        reason = CONTENT_REFUSED if isinstance(exc, ContentDisallowed) else INVALID_TASK
        self._refuse(message, reason, super().on_invalid_task, body, message, exc)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        """Reconnect, leaving running jobs alone (Celery's advice to cancel them is not taken).

        ``worker_cancel_long_running_tasks_on_connection_loss`` is off on
        purpose: a running job finishes and acknowledges its message on the
        new connection (:mod:`pipeline.broker.qos`).
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CPendingDeprecationWarning)
            super().on_connection_error_after_connected(exc)
