"""myapp: an application that already runs its jobs on Celery."""

from myapp.celery import app

__all__ = ["app"]
