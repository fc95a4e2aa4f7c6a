"""The release number is declared once and every place that shows it agrees."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

import pipeline
from pipeline import __version__
from pipeline.cli.main import DISTRIBUTION, cli

ROOT = Path(__file__).resolve().parents[2]


def test_the_version_is_declared_once_and_read_by_the_build() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert not re.search(r"^version\s*=\s*\"", text, re.M), "pyproject declares a version"
    assert 'dynamic = ["version"]' in text
    assert 'version = {attr = "pipeline.__version__"}' in text
    assert f'\nname = "{DISTRIBUTION}"\n' in text
    assert pipeline.__version__ == __version__


def test_pipeline_version_and_dash_dash_version_print_the_release() -> None:
    runner = CliRunner()
    for args in (["--version"], ["-V"]):
        done = runner.invoke(cli, args)
        assert done.exit_code == 0
        assert done.output == f"pipeline {__version__} ({DISTRIBUTION})\n"
    done = runner.invoke(cli, ["version"])
    assert done.exit_code == 0
    assert done.output.startswith(f"pipeline {__version__} ({DISTRIBUTION})\ncelery ")


def test_the_changelog_follows_keep_a_changelog_and_the_licence_is_shipped() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert changelog.startswith("# Changelog")
    assert "keepachangelog.com" in changelog
    assert "## [Unreleased]" in changelog
    for section in ("### Added", "### Changed", "### Fixed"):
        assert section in changelog
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")
