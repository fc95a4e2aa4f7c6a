"""Imported into a worker (``-I tests.helpers.dies_on_take``): its main process kills itself
(SIGKILL) the first time a message reaches its consumer, before the message's record is
written the way kombu writes it: the moment a ``kill -9`` can catch a worker that has just
taken a message."""

from __future__ import annotations

import os
import signal
from typing import Any

from pipeline.broker.qos import PipelineQoS


def _die(self: PipelineQoS, message: Any, delivery_tag: str) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


PipelineQoS.append = _die  # type: ignore[method-assign]
