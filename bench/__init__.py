"""Benchmarks of the pipeline against plain Celery on the same Redis: ``python -m bench``.

Every scenario runs both apps alternately in the same run and reports the
medians, every sample and the ratio pipeline / plain. See ``bench/README.md``.
"""
