"""Sphinx configuration of the pipeline's documentation site.

Build it with warnings as errors (``scripts/test.sh`` does, so CI does)::

    .venv/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

Pages are Markdown (MyST); the reference is generated at build time from the
code: the settings from ``pipeline/conf.py``, the CLI from click, the REST API
from its OpenAPI schema, the Python API from docstrings (``_ext/``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT), str(DOCS / "_ext")]
# Importing the app to render the API and the CLI must not look for a broker.
os.environ.setdefault("PIPELINE_BROKER_URL", "redis://127.0.0.1:6379/0")

from pipeline import __version__  # noqa: E402

# Importing the store for its docstrings sets alembic up; its INFO lines are noise here.
logging.getLogger("alembic").setLevel(logging.WARNING)

project = "pipeline"
author = "the pipeline developers"
copyright = "2026, the pipeline developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_click",
    "sphinxcontrib.mermaid",
    "pipeline_reference",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "README.md", "tutorial/myapp"]

myst_enable_extensions = ["colon_fence", "deflist"]
# ```mermaid fences render as diagrams here, as they do on the forges.
myst_fence_as_directive = ["mermaid"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
# Celery's own docstrings (inherited by PipelineTask's options) use Celery's Sphinx roles.
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = [("Class options", "params_style")]

html_theme = "furo"
html_title = f"pipeline {release}"
html_static_path: list[str] = []
# Links to the source repository's files from pages that name them.
html_show_sourcelink = False
