"""Benchmark jobs of the pipeline app, run by ``python -m bench``.

Started with ``celery -A tasks.app worker -I tasks.bench``. Each job returns
the time it started, so the benchmark reads start times from the results that
any Celery deployment stores anyway; ``bench/plain_app.py`` has the same jobs
as plain Celery tasks.

``mark`` times a drain whose results are ignored: the first and the last
message of the drain are a ``mark`` job, which writes when it ran into a Redis
hash (``bench/marks.py``); the jobs between them are the trivial job, unchanged.
"""

from __future__ import annotations

from pipeline.job.task import PipelineTask
from tasks.app import app
from tasks.marks import record_mark, started_at

__all__ = ["app", "mark", "noop"]

noop = app.task(base=PipelineTask, name="bench.pipeline.noop")(started_at)
mark = app.task(base=PipelineTask, bind=True, name="bench.pipeline.mark")(record_mark)
