"""What kombu's Redis transport needs of a queue item before it can hand it to a consumer.

kombu pops an item off a queue list and decodes it in one step
(``Channel._brpop_read``): an item that is not JSON raises out of the worker's
event loop and the worker exits, the item already gone. An item that is JSON
but not a kombu envelope fails a few steps later, just as hard. :func:`refusal`
checks an item the way kombu will read it, so the transport can set it aside
instead (see :mod:`pipeline.broker.transport`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kombu.utils.json import loads

NOT_TEXT = "not UTF-8 text"
NOT_JSON = "not JSON"
NOT_A_MESSAGE = "not a broker message"
BAD_BODY = "body not decodable"


def refusal(item: bytes | str, decode_body: Callable[[Any, str], Any]) -> str | None:
    """Why kombu could not deliver *item*; None when it can.

    Args:
        item: the raw list item.
        decode_body: the channel's ``decode_body(body, encoding)``.
    """
    return screened(item, decode_body)[1]


def screened(item: bytes | str, decode_body: Callable[[Any, str], Any]
             ) -> tuple[dict[str, Any] | None, str | None]:
    """*item* decoded as kombu decodes it (its JSON, with kombu's types), or why kombu could
    not deliver it: ``(payload, None)`` or ``(None, reason)``. The transport delivers the
    payload, so an item is decoded once."""
    try:
        text = item.decode("utf-8") if isinstance(item, bytes) else item
    except UnicodeDecodeError:
        return None, NOT_TEXT
    try:
        payload = loads(text)
    except Exception:  # not JSON, or a kombu type marker its decoder cannot read
        return None, NOT_JSON
    reason = _envelope_refusal(payload, decode_body)
    return (None, reason) if reason else (payload, None)


def _envelope_refusal(payload: Any, decode_body: Callable[[Any, str], Any]) -> str | None:
    if not isinstance(payload, dict):
        return NOT_A_MESSAGE
    properties = payload.get("properties")
    if not isinstance(properties, dict) or not isinstance(properties.get("delivery_tag"),
                                                          (str, int)):
        return NOT_A_MESSAGE
    info = properties.get("delivery_info")
    if not isinstance(info, dict) or "exchange" not in info or "routing_key" not in info:
        return NOT_A_MESSAGE
    headers = payload.get("headers")
    if headers is not None and not isinstance(headers, dict):
        return NOT_A_MESSAGE
    encoding = properties.get("body_encoding")
    body = payload.get("body")
    if body and encoding and str(encoding).lower() != "utf-8":
        try:
            decode_body(body, str(encoding))
        except Exception:  # any codec error: kombu would raise the same one
            return BAD_BODY
    return None
