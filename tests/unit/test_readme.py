"""The README says what the code does: its settings table and its commands."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def settings_table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_table",
                                                  ROOT / "scripts" / "settings_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_commands() -> list[str]:
    """The commands of the README's first two code blocks (set up + demo, the tests)."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [block.strip() for block in blocks[:2]]


def test_readme_settings_table_matches_the_declared_settings() -> None:
    from pipeline.conf import SETTINGS

    module = settings_table()
    block = module.current_block((ROOT / "README.md").read_text())
    assert block == module.render(), (
        "README.md is out of date: run python scripts/settings_table.py --write")
    for setting in SETTINGS:
        assert f"`{setting.name}`" in block


def test_readme_starts_with_two_single_line_commands() -> None:
    demo, tests = readme_commands()
    assert "\n" not in demo and "\n" not in tests
    assert demo.endswith("pipeline demo")
    assert "venv" in demo


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, tests = readme_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert tests in ci_lines, f".ci/run must run {tests!r}"
