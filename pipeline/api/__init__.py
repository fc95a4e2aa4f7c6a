"""The REST API and web dashboard (FastAPI, served by uvicorn through ``pipeline api``).

:func:`pipeline.api.app.create_app` builds the application for a Celery app;
:mod:`pipeline.api.server` serves it. Every route calls the library functions
the CLI calls; nothing here queries or acts on jobs by itself.
"""
