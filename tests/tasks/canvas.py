"""Small pipeline jobs for the canvas tests: arithmetic, replace, errors, priorities."""

from __future__ import annotations

from typing import Any

from celery import chain, group

from pipeline import PipelineTask
from tasks.app import app


@app.task(base=PipelineTask, name="canvas.add")
def add(x: int, y: int) -> int:
    """x + y."""
    return x + y


@app.task(base=PipelineTask, name="canvas.tsum")
def tsum(numbers: list[int]) -> int:
    """The sum of a list (a chord's body)."""
    return sum(numbers)


@app.task(base=PipelineTask, name="canvas.identity")
def identity(value: Any) -> Any:
    """Its argument."""
    return value


@app.task(base=PipelineTask, bind=True, name="canvas.replaced_by_a_chain_with_a_group")
def replaced_by_a_chain_with_a_group(self: Any) -> Any:
    """Replace itself with ``add(1, 1) | group(add(1), add(1))`` (-> [3, 3])."""
    return self.replace(chain(add.s(1, 1), group(add.s(1), add.s(1))))


@app.task(base=PipelineTask, name="canvas.add_eagerly_inside")
def add_eagerly_inside(x: int, y: int) -> int:
    """Run ``add(x, y) | add(y)`` inline (the app being eager) and return its result."""
    return int(chain(add.s(x, y), add.s(y)).apply_async().get(disable_sync_subtasks=False))


@app.task(base=PipelineTask, bind=True, name="canvas.priority_of")
def priority_of(self: Any, *_: Any) -> int:
    """The priority this job was delivered at."""
    return int((self.request.delivery_info or {}).get("priority"))


@app.task(base=PipelineTask, name="canvas.fail", dont_retry_for=(ValueError,))
def fail(reason: str) -> None:
    """Raise ``ValueError(reason)`` (never retried)."""
    raise ValueError(reason)


@app.task(base=PipelineTask, bind=True, name="canvas.stamps_of")
def stamps_of(self: Any, *_: Any) -> dict[str, Any]:
    """The stamps this job received."""
    return dict(self.request.stamps or {})


@app.task(base=PipelineTask, name="canvas.starmap_by_name")
def starmap_by_name(task: str, it: list[list[int]]) -> list[Any]:
    """Celery's ``celery.starmap`` builtin, as a pipeline job: it takes its ``task`` by
    keyword, the name the job's own task must not take from it."""
    return [app.tasks[task](*item) for item in it]
