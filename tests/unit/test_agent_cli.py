"""``pipeline agent``'s token file and options: refused loudly, never echoing the token."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli.agent import read_token
from pipeline.cli.main import cli
from pipeline.errors import ConfigurationError

SECRET = "a-secret-of-pool-gpu-000000"


def test_the_token_file_holds_the_pools_entry_or_the_token_alone(tmp_path: Path) -> None:
    entry, bare = tmp_path / "entry", tmp_path / "bare"
    entry.write_text(f"# the gpu pool\nagent:gpu:{SECRET}\n")
    bare.write_text(f"{SECRET}\n")
    assert read_token(str(entry), "gpu") == read_token(str(bare), "gpu") == SECRET


@pytest.mark.parametrize("text, message", [
    (f"agent:cpu:{SECRET}", "holds a token of pool 'cpu', not of --pool 'gpu'"),
    ("", "expected one line"),
    (f"{SECRET}\n{SECRET}", "expected one line"),
])
def test_a_wrong_token_file_is_refused_without_echoing_the_token(
        tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "token"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message) as caught:
        read_token(str(path), "gpu")
    assert SECRET not in str(caught.value)


def test_the_agent_needs_a_command_or_a_handler_and_a_valid_pool(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(SECRET)
    base = ["agent", "--api", "http://127.0.0.1:9", "--token-file", str(token)]
    neither = CliRunner().invoke(cli, [*base, "--pool", "gpu"])
    assert neither.exit_code == 2 and "give a COMMAND" in neither.output
    bad = CliRunner().invoke(cli, [*base, "--pool", "no pool", "--", "true"])
    assert bad.exit_code == 2 and "--pool='no pool' is not accepted" in bad.output
    missing = CliRunner().invoke(cli, [*base, "--pool", "gpu", "--handler", "nowhere:run"])
    assert missing.exit_code == 1 and "nowhere" in missing.output
