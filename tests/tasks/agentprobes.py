"""Jobs of the agent-pool tests: steps a Celery worker runs around an agent's step.

An agent's step has no body a worker runs (its agent runs it); it is declared
with ``agent_pool`` so every call goes to the pool. The API process must know
these tasks too (as a worker would) to publish a workflow's next step:
:mod:`tests.tasks.agentapp` is the app the tests' API processes load.
"""

from __future__ import annotations

from typing import Any

from pipeline import PipelineTask
from tasks.app import app

POOL = "prod"


@app.task(base=PipelineTask, name="agentprobes.add")
def add(x: int, y: int = 1) -> int:
    """A worker's step: *x* + *y*."""
    return x + y


@app.task(base=PipelineTask, name="agentprobes.remote", agent_pool=POOL)
def remote(*args: Any, **kwargs: Any) -> Any:
    """An agent's step (run by an agent of pool ``prod``, never by a worker)."""
    raise RuntimeError("agentprobes.remote is run by agents of pool prod, not by a worker")


@app.task(base=PipelineTask, name="agentprobes.train", agent_pool=POOL, models=("bert",))
def train(*args: Any, **kwargs: Any) -> Any:
    """An agent's step that writes model ``bert``."""
    raise RuntimeError("agentprobes.train is run by agents of pool prod, not by a worker")


@app.task(base=PipelineTask, name="agentprobes.flaky", agent_pool=POOL, max_retries=1,
          backoff=0.05, jitter=False)
def flaky(*args: Any, **kwargs: Any) -> Any:
    """An agent's step retried once, 50 ms after a failure, then dead-lettered."""
    raise RuntimeError("agentprobes.flaky is run by agents of pool prod, not by a worker")


@app.task(base=PipelineTask, name="agentprobes.total")
def total(values: list[int]) -> int:
    """A worker's step: the sum of a chord's results."""
    return sum(values)
