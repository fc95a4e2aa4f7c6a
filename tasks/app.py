"""The pipeline's Celery app: ``celery -A tasks.app worker``."""

from __future__ import annotations

from celery import Celery

from pipeline.appsetup import install

app = install(Celery("tasks"), config="celeryconfig")
# The demo jobs (the README's examples) and the lock probes run on any worker of this app.
app.conf.include = ["tasks.demo", "tasks.lockprobes"]
