"""Wiring the pipeline into a Celery app.

* :mod:`~pipeline.app.install`: what :func:`install` adds to an app (its broker
  transport, signals, bootsteps, beat schedule).
* :mod:`~pipeline.app.defaults`: the default Celery configuration, read from the
  environment (what ``celeryconfig.py`` imports).
"""
