"""Demo jobs: prepare a dataset, train a model, evaluate it.

Each job sleeps a moment and returns when and where it ran, so ``pipeline demo``
can show the order jobs ran in and how long each waited without the job store.
:func:`workload` is the mixed workload the demo submits.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pipeline import PipelineTask
from tasks.app import app


def _work(task: Any, subject: str, seconds: float) -> dict[str, Any]:
    started = time.time()
    # With the pid and start time the demo shows (track_started writes STARTED alone).
    task.update_state(state="STARTED", meta={"started": started, "pid": os.getpid()})
    time.sleep(seconds)
    return {"task": task.name, "subject": subject, "pid": os.getpid(),
            "started": started, "finished": time.time()}


@app.task(base=PipelineTask, bind=True, name="tasks.demo.prepare", track_started=True)
def prepare(self: Any, dataset: str, seconds: float = 0.4) -> dict[str, Any]:
    """Prepare *dataset* (needs only the caller's user and a global slot)."""
    return _work(self, dataset, seconds)


@app.task(base=PipelineTask, bind=True, name="tasks.demo.train", track_started=True)
def train(self: Any, model: str, seconds: float = 1.0) -> dict[str, Any]:
    """Train *model*; call it with ``models=[model]`` so it writes the model alone."""
    return _work(self, model, seconds)


@app.task(base=PipelineTask, bind=True, name="tasks.demo.evaluate", track_started=True)
def evaluate(self: Any, model: str, seconds: float = 0.5) -> dict[str, Any]:
    """Evaluate *model*; call it with ``shared=[model]``: evaluations read it together."""
    return _work(self, model, seconds)


def workload() -> list[dict[str, Any]]:
    """The demo's mixed workload, in submission order.

    Each item has ``task``, ``args`` and ``options`` (for ``apply_async``).
    Several users and all four priorities; two trainings of ``bert`` and of
    ``gpt`` exclude each other, evaluations share their model.
    """

    def job(task: Any, subject: str, user: str, priority: str,
            **resources: Any) -> dict[str, Any]:
        return {"task": task, "args": (subject,),
                "options": {"user": user, "priority": priority, **resources}}

    return [
        job(prepare, "reviews", "alice", "low"),
        job(prepare, "tickets", "bob", "low"),
        job(train, "bert", "alice", "normal", models=["bert"]),
        job(train, "gpt", "bob", "normal", models=["gpt"]),
        job(evaluate, "bert", "carol", "normal", shared=["bert"]),
        job(train, "bert", "dan", "high", models=["bert"]),
        job(evaluate, "gpt", "carol", "low", shared=["gpt"]),
        job(prepare, "invoices", "erin", "critical"),
        job(train, "t5", "erin", "high", models=["t5"]),
        job(evaluate, "t5", "dan", "normal", shared=["t5"]),
        job(train, "gpt", "erin", "critical", models=["gpt"]),
        job(prepare, "logs", "bob", "normal"),
    ]
