"""The release: a wheel and an sdist that pass ``twine check``, carry what an installed
pipeline needs, and run the demo from a fresh virtual environment outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import __version__
from pipeline.cli.main import DISTRIBUTION
from tests.helpers.commands import ROOT, no_broker_env

pytestmark = pytest.mark.system

WHEEL_PREFIX = DISTRIBUTION.replace("-", "_")


def run(argv: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          cwd=cwd, env=env)
    assert done.returncode == 0, (
        f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
        f"{done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The sdist and the wheel, built as a release is (``python -m build``)."""
    out = tmp_path_factory.mktemp("dist")
    # build makes an isolated environment with pyproject's build requirements.
    # No --sdist/--wheel: the wheel is built from the sdist, which proves the sdist whole.
    run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        cwd=out, timeout=600)
    yield out


def test_wheel_and_sdist_are_named_for_the_index_and_pass_twine_check(dist: Path) -> None:
    wheel = dist / f"{WHEEL_PREFIX}-{__version__}-py3-none-any.whl"
    sdist = dist / f"{WHEEL_PREFIX}-{__version__}.tar.gz"
    assert wheel.exists() and sdist.exists(), sorted(p.name for p in dist.iterdir())
    done = run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
               cwd=dist, timeout=120)
    assert done.stdout.count("PASSED") == 2, done.stdout
    metadata = zipfile.ZipFile(wheel).read(
        f"{WHEEL_PREFIX}-{__version__}.dist-info/METADATA").decode()
    assert f"Name: {DISTRIBUTION}\n" in metadata and f"Version: {__version__}\n" in metadata
    assert "License-Expression: BSD-3-Clause" in metadata
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "pyproject.toml", "pipeline/__init__.py"} <= names


def test_wheel_ships_the_lua_scripts_the_migrations_the_assets_and_the_default_config(
        dist: Path) -> None:
    (wheel,) = dist.glob(f"{WHEEL_PREFIX}-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    scripts = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pipeline").rglob("*.lua")}
    migrations = {p.relative_to(ROOT).as_posix()
                  for p in (ROOT / "pipeline" / "store" / "migrations").rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts}
    assets = {p.relative_to(ROOT).as_posix()
              for folder in ("static", "vendor")
              for p in (ROOT / "pipeline" / "api" / folder).rglob("*") if p.is_file()}
    assert scripts and scripts <= names, f"missing Lua scripts: {sorted(scripts - names)}"
    assert "pipeline/store/migrations/env.py" in migrations
    assert migrations <= names, f"missing migrations: {sorted(migrations - names)}"
    assert "pipeline/api/vendor/redoc/redoc.standalone.js" in assets
    assert assets <= names, f"missing web assets: {sorted(assets - names)}"
    assert "pipeline/app/defaults.py" in names and "tasks/app.py" in names
    assert f"{WHEEL_PREFIX}-{__version__}.dist-info/licenses/LICENSE" in names


def test_the_installed_wheel_runs_the_demo_outside_the_checkout(
        dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob(f"{WHEEL_PREFIX}-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, timeout=120)
    python = venv / "bin" / "python"
    # Dependencies come from the index (or pip's cache), the pipeline from the wheel only.
    run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         str(wheel)], cwd=tmp_path, timeout=900)
    env = no_broker_env(tmp_path / "data")
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    found = run([str(python), "-c", "import pipeline; print(pipeline.__file__)"],
                cwd=tmp_path, timeout=60, env=env).stdout
    assert str(venv) in found and str(ROOT) not in found, found
    version = run([str(venv / "bin" / "pipeline"), "--version"], cwd=tmp_path, timeout=60,
                  env=env).stdout
    assert version.strip() == f"pipeline {__version__} ({DISTRIBUTION})"
    demo = run([str(venv / "bin" / "pipeline"), "demo"], cwd=tmp_path, timeout=180, env=env)
    assert "what ran, in the order it started" in demo.stdout
    assert "demo finished" in demo.stdout
