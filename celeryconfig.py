"""Celery configuration of the pipeline app (``tasks.app`` reads this module).

The defaults live in :mod:`pipeline.app.defaults` (installed with the package,
and read from the environment: ``PIPELINE_BROKER_URL``, ``PIPELINE_DATABASE_URL``,
``PIPELINE_<SETTING>``...). Change or add Celery settings below them; a
deployment without this file gets the defaults.
"""

from pipeline.app.defaults import *  # noqa: F403
