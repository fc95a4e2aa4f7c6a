"""Jobs of the admission tests (loaded into their workers with ``-I``)."""

from __future__ import annotations

import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from pipeline import PipelineTask
from tasks.app import app


@app.task(base=PipelineTask, bind=True, name="admission_tests.stubborn")
def stubborn(self: Any, seconds: float) -> str:
    """Run for *seconds*, ignoring the soft time limit: only the hard one stops it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except SoftTimeLimitExceeded:
            continue
    return "finished"
