"""The Celery app of myapp, with the pipeline wired in."""

from celery import Celery

from pipeline.app.install import install

# Before: app = Celery("myapp", include=["myapp.tasks"]); app.config_from_object(...)
app = install(Celery("myapp", include=["myapp.tasks"]), config="myapp.celeryconfig")
