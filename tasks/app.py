"""The pipeline's Celery app: ``celery -A tasks.app worker``.

It reads ``celeryconfig`` (the checkout's top-level module, or one on the
Python path of a deployment), else the package's defaults,
:mod:`pipeline.app.defaults`.
"""

from __future__ import annotations

from importlib.util import find_spec

from celery import Celery

from pipeline.app.install import install

CONFIG = "celeryconfig" if find_spec("celeryconfig") is not None else "pipeline.app.defaults"

app = install(Celery("tasks"), config=CONFIG)
# The demo jobs (the README's examples) and the handler of imported requests
# (`pipeline import`) run on any worker of this app. Test-only tasks live under
# tests/ and are loaded only by the workers the tests start.
app.conf.include = ["tasks.demo", "tasks.requests"]
