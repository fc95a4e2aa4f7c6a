"""The reference agent's HTTP client: JSON over HTTP(S), retried with backoff.

Standard library only (an agent host needs nothing but Python and this
package). A request that does not reach the API, or gets a 5xx or 429, is sent
again after a delay that doubles from ``backoff[0]`` to ``backoff[1]`` seconds
(with jitter), until it gets an answer, the caller's deadline passes or the
agent is stopping; any other answer is returned as it is. The token goes in
the ``Authorization`` header only and is never logged.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)
#: Answers worth sending the same request again for.
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


class ApiUnreachable(Exception):
    """The API did not answer before the deadline (or the agent is stopping)."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: its status and its JSON body (None when it has none)."""

    status: int
    body: Any


class ApiClient:
    """Posts JSON to the pipeline's REST API as one agent.

    Args:
        base_url: the API's address (``https://control.example:8000``).
        token: the agent's bearer token (never logged).
        stopping: set when the agent stops; retries give up then.
        backoff: first and longest delay between two tries, in seconds.
        context: the TLS context for ``https`` (default: the system's trust store).
    """

    def __init__(self, base_url: str, token: str, *, stopping: threading.Event | None = None,
                 backoff: tuple[float, float] = (0.5, 30.0),
                 context: ssl.SSLContext | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.stopping = stopping or threading.Event()
        self.backoff = backoff
        self.context = context

    def __repr__(self) -> str:  # never the token
        return f"ApiClient({self.base_url!r})"

    def post(self, path: str, body: dict[str, Any], *, timeout: float = 30.0,
             give_up_after: float | None = None, while_stopping: bool = False) -> Answer:
        """POST *body* to *path*; the answer, retried as the module says.

        Args:
            path: e.g. ``/api/agents/claim``.
            body: the JSON body.
            timeout: seconds one try may take.
            give_up_after: seconds after which to stop retrying (None: until stopped).
            while_stopping: keep trying after the agent began stopping (a give-back).

        Raises:
            ApiUnreachable: no answer worth returning before giving up.
        """
        data = json.dumps(body).encode()
        deadline = None if give_up_after is None else time.monotonic() + give_up_after
        delay = self.backoff[0]
        while True:
            answer = self._try(path, data, timeout)
            if answer is not None and answer.status not in RETRIED_STATUSES:
                return answer
            what = f"HTTP {answer.status}" if answer is not None else "no answer"
            out_of_time = deadline is not None and time.monotonic() + delay > deadline
            if out_of_time or (self.stopping.is_set() and not while_stopping):
                raise ApiUnreachable(f"POST {path}: {what}; giving up")
            logger.warning("POST %s: %s; trying again in %.1f s", path, what, delay)
            if while_stopping:
                time.sleep(delay)
            elif self.stopping.wait(delay):
                raise ApiUnreachable(f"POST {path}: {what}; the agent is stopping")
            delay = min(delay * 2, self.backoff[1]) * random.uniform(0.8, 1.0)

    def _try(self, path: str, data: bytes, timeout: float) -> Answer | None:
        request = urllib.request.Request(
            self.base_url + path, data=data, method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json",
                     "Authorization": f"Bearer {self._token}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.context) as done:
                return Answer(done.status, _json(done.read()))
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, _json(exc.read()))
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            logger.debug("POST %s failed: %r", path, exc)
            return None


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"detail": raw[:500].decode("utf-8", "replace")}
