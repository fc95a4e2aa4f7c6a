"""Running the ``pipeline`` command as a user with nothing configured would."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: ``[sys.executable, "-c", CLI, ...]`` runs the ``pipeline`` command.
CLI = "from pipeline.cli.main import main; main()"


def no_broker_env(data_dir: Path) -> dict[str, str]:
    """The environment of a user who configured nothing but a data directory."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PIPELINE_BROKER_URL", "CELERY_BROKER_URL", "PIPELINE_RESULT_BACKEND")}
    env["PIPELINE_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env
