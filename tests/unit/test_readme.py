"""The README leads with what a first visit needs; the rest is in the docs site.

It keeps the two commands at the very top (set up and run the demo; run every check),
stays short, and every link it gives leads somewhere. The reference it used to carry is
generated from the code when the site is built (``docs/_ext/pipeline_reference.py``).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: What a first visit needs fits in this many lines.
MAX_LINES = 250


def settings_table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_table",
                                                  ROOT / "scripts" / "settings_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_commands() -> list[str]:
    """The commands of the README's first two code blocks (set up + demo, the tests)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    return [block.strip() for block in blocks[:2]]


def test_readme_starts_with_two_single_line_commands() -> None:
    demo, tests = readme_commands()
    assert "\n" not in demo and "\n" not in tests
    assert demo.endswith("pipeline demo")
    assert "venv" in demo
    first_block = README.read_text().index("```")
    assert README.read_text()[:first_block].count("\n") < 5, "the commands lead the README"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, tests = readme_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert tests in ci_lines, f".ci/run must run {tests!r}"


def test_readme_keeps_to_what_a_first_visit_needs() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines (at most {MAX_LINES})"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings[:2] == ["## What it is", "## A five-minute tour"], headings
    assert "## Documentation" in headings


def test_every_link_of_the_readme_leads_to_a_file_of_the_checkout() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if "://" not in link]
    assert len(local) > 20
    missing = [link for link in local if not (ROOT / link).exists()]
    assert missing == []
    # Each part of the site is linked (every page is in the site's toctree: sphinx -W).
    for part in ("docs/tutorial/", "docs/howto/", "docs/reference/", "docs/explanation/",
                 "docs/architecture.md"):
        assert any(link.startswith(part) for link in local), part


def test_the_settings_reference_is_generated_from_every_declared_setting() -> None:
    from pipeline.conf import SETTINGS

    table = settings_table().render()
    for setting in SETTINGS:
        assert f"| `{setting.name}` | `{setting.name.upper()}` |" in table
    page = (ROOT / "docs" / "reference" / "settings.md").read_text()
    assert "```{pipeline-settings}" in page
