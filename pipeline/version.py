"""The release of this package, declared once.

``pyproject.toml`` reads it from here (``[tool.setuptools.dynamic]``), so the
wheel's metadata, ``pipeline --version``, ``pipeline version`` and
``pipeline.__version__`` cannot disagree. Releases follow semantic versioning;
``CHANGELOG.md`` says what each one changed.
"""

from __future__ import annotations

__version__ = "0.1.0"
#: The distribution name on the package index (the import name is ``pipeline``).
DISTRIBUTION = "celery-job-pipeline"
