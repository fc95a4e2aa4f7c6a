"""``pipeline demo`` on a machine with nothing configured: finishes, reports, cleans up."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers.commands import CLI, ROOT, no_broker_env

pytestmark = pytest.mark.system


def leftovers(data_dir: Path, demo_pid: int) -> list[str]:
    """Processes the demo started that still run: its Redis, its worker and pool."""
    marks = (str(data_dir), f"demo{demo_pid}@")
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(m in cmdline for m in marks):
            found.append(f"{proc.pid} {cmdline[:120]}")
    return found


def test_demo_runs_its_workload_within_a_minute_and_leaves_no_process(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    started = time.monotonic()
    demo = subprocess.Popen([sys.executable, "-c", CLI, "demo"], cwd=ROOT,
                            env=no_broker_env(data_dir), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = demo.communicate(timeout=90)
    elapsed = time.monotonic() - started

    assert demo.returncode == 0, output
    assert elapsed < 60, f"the demo took {elapsed:.0f} s"
    assert "what ran, in the order it started" in output
    for label in ("prepare invoices", "train bert", "evaluate gpt"):
        assert label in output
    assert "demo finished" in output
    # Jobs that waited for a user or a model are marked as parked (BLOCKED was seen).
    assert re.search(r"\d\.\d\ds\*", output), "no job of the demo was shown as parked"
    assert not leftovers(data_dir, demo.pid)
    assert not (data_dir / "redis.url").exists()
