"""The built wheel carries what an installed pipeline needs outside the Python modules."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers.commands import ROOT

pytestmark = pytest.mark.system


def test_wheel_ships_the_lua_scripts_the_migrations_and_the_default_config(
        tmp_path: Path) -> None:
    # pip builds in an isolated environment with the build requirements of
    # pyproject.toml (from the package index, or a local wheel cache).
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--wheel-dir", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert done.returncode == 0, f"building the wheel failed:\n{done.stderr[-2000:]}"
    (wheel,) = (tmp_path / "dist").glob("pipeline-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    scripts = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pipeline").rglob("*.lua")}
    migrations = {p.relative_to(ROOT).as_posix()
                  for p in (ROOT / "pipeline" / "store" / "migrations").rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts}
    assert scripts and scripts <= names, f"missing Lua scripts: {sorted(scripts - names)}"
    assert "pipeline/store/migrations/env.py" in migrations
    assert migrations <= names, f"missing migrations: {sorted(migrations - names)}"
    assert "pipeline/app/defaults.py" in names and "tasks/app.py" in names
