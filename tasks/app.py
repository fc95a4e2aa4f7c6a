"""The pipeline's Celery app: ``celery -A tasks.app worker``."""

from __future__ import annotations

from celery import Celery

from pipeline.appsetup import install

app = install(Celery("tasks"), config="celeryconfig")
app.conf.include = ["tasks.lockprobes"]
