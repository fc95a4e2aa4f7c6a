"""The durable job store: jobs, workflows and the append-only queue log.

Nothing here talks to Celery. Workers and lock scripts write events to the Redis
stream (:mod:`pipeline.messages.events`); the :mod:`~pipeline.store.recorder` writes them
to SQL in batches; :mod:`~pipeline.store.queries` reads them back. The schema is
owned by the Alembic scripts in ``pipeline/store/migrations/`` (``migrations/`` at
the top of a checkout links there; see :mod:`~pipeline.store.migrate`).
"""
