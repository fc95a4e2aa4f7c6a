"""The pipeline app with the agent-pool tests' tasks: ``pipeline -A tests.tasks.agentapp``."""

from __future__ import annotations

import tests.tasks.agentprobes
import tests.tasks.lockprobes  # noqa: F401
from tasks.app import app

__all__ = ["app"]
