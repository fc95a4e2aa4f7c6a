"""The tutorial runs as written: its ``myapp`` and the commands of its page, for real.

The page shows each file of ``docs/tutorial/myapp/`` as it is (so it reads on the forges
too); the commands are read from the page's ``bash`` blocks and run in order, in a folder
outside the checkout (the broker is the test's Redis instead of the page's example URL).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from pipeline.cli.main import DISTRIBUTION
from tests.helpers.commands import ROOT

pytestmark = pytest.mark.system

TUTORIAL = ROOT / "docs" / "tutorial"


def page_commands() -> list[str]:
    """The commands of the tutorial page's ``bash`` blocks, in order."""
    blocks = re.findall(r"```bash\n(.*?)```", (TUTORIAL / "index.md").read_text(), re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_tutorial_page_names_its_commands() -> None:
    assert page_commands() == [
        f"pip install {DISTRIBUTION}",
        "export PIPELINE_BROKER_URL=redis://127.0.0.1:6379/0",
        "pipeline -A myapp db upgrade",
        "celery -A myapp worker -Q myapp -c 2 -l info",
        "pipeline -A myapp recorder",
        "python -m myapp.submit",
        "pipeline -A myapp jobs",
        "pipeline -A myapp show b3a248a2-801d-4815-a961-3358eadc9ca6",
    ]


def test_the_tutorial_page_shows_each_file_of_myapp_as_it_is() -> None:
    shown = dict(re.findall(r"```python\n# (myapp/\w+\.py)\n(.*?)```",
                            (TUTORIAL / "index.md").read_text(), re.S))
    files = {f"myapp/{p.name}": p.read_text() for p in (TUTORIAL / "myapp").glob("*.py")}
    assert set(shown) == set(files)
    for name, text in files.items():
        assert shown[name] == text, f"docs/tutorial/index.md shows an old {name}"


def test_the_tutorial_app_parks_a_job_behind_a_model_and_hands_it_over(
        redis_url: str, tmp_path: Path) -> None:
    shutil.copytree(TUTORIAL / "myapp", tmp_path / "myapp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    # A database of its own: the page's app is not the tests' app.
    broker = redis_url.rsplit("/", 1)[0] + "/15"
    redis.Redis.from_url(broker).flushdb()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIPELINE_", "CELERY_")) and k != "PYTHONPATH"}
    env.update(PIPELINE_BROKER_URL=broker, PIPELINE_DATA_DIR=str(tmp_path / ".pipeline"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               PYTHONUNBUFFERED="1")
    commands = page_commands()
    setup, worker, recorder, submit, jobs, show = (commands[2], commands[3], commands[4],
                                                  commands[5], commands[6], commands[7])

    def run(command: str) -> str:
        done = subprocess.run(command.split(), cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    run(setup)
    background = []
    try:
        for command, name in ((worker, "worker"), (recorder, "recorder")):
            log = (tmp_path / f"{name}.log").open("wb")
            background.append(subprocess.Popen(command.split(), cwd=tmp_path, env=env,
                                               stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))
        submitted = run(submit)
        ids = re.findall(r"^(\S+) submitted$", submitted, re.M)
        assert len(ids) == 3, submitted
        for job, result in zip(ids, ("bert trained for 2 epoch(s)",
                                     "bert trained for 1 epoch(s)",
                                     "bert evaluated on holdout"), strict=True):
            assert f"{job} {result}" in submitted
        bob = ids[1]

        def recorded() -> str:
            listing = run(jobs)
            return listing if listing.count("COMPLETED") == 3 else ""

        listing = _poll(recorded, "the recorder to write the three jobs")
        assert "myapp.tasks.train" in listing and "myapp.tasks.evaluate" in listing
        story = run(show.rsplit(" ", 1)[0] + f" {bob}")
        assert f"{bob}: finished: COMPLETED" in story
        assert re.search(r"blocked\s+waiting for model:bert", story), story
        assert re.search(r"granted\s+global, model:bert, user:bob", story), story
    finally:
        for process in background:
            os.killpg(process.pid, 15)
        for process in background:
            process.wait(30)


def _poll(check: object, what: str, timeout: float = 30.0) -> str:
    import time

    assert callable(check)
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return str(value)
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)
