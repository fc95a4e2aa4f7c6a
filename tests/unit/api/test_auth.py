"""Token parsing, checking and the refusal to listen beyond loopback without one."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import conf
from pipeline.api.auth import (
    Scope,
    TokenSet,
    is_loopback,
    parse_tokens,
    require_safe_bind,
)
from pipeline.conf import Settings
from pipeline.errors import ConfigurationError

READ = "r" * 20
ADMIN = "a" * 24


def settings(**values: object) -> Settings:
    """The settings of a config that sets only *values* (``pipeline_`` prefixed)."""
    return conf.read({f"pipeline_{name}": value for name, value in values.items()})


def test_tokens_of_both_scopes_are_read_from_the_setting_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# operators\nadmin:{ADMIN}  # the on-call token\n\n")
    tokens = TokenSet.from_settings(settings(api_tokens=f"read:{READ}",
                                             api_token_file=str(path)))
    read, admin = tokens.check(READ), tokens.check(ADMIN)
    assert read is not None and read.scope is Scope.READ
    assert admin is not None and admin.scope is Scope.ADMIN
    assert tokens.check(ADMIN[:-1]) is None and tokens.check(ADMIN + "x") is None
    assert tokens.check("") is None


def test_audit_name_of_a_token_is_a_fingerprint_not_the_token() -> None:
    caller = TokenSet(tuple(parse_tokens(f"admin:{ADMIN}", "t"))).check(ADMIN)
    assert caller is not None
    assert caller.name.startswith("api:admin:") and ADMIN not in caller.name


@pytest.mark.parametrize("entry, message", [
    ("writer:" + "x" * 20, "scope read or admin"),
    ("x" * 20, "SCOPE:TOKEN"),
    ("read:short", "at least 16"),
])
def test_malformed_entry_is_refused_naming_its_number_never_the_token(
        entry: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        parse_tokens(f"read:{READ},{entry}", "pipeline_api_tokens")
    assert "entry 2" in str(caught.value)
    assert entry.partition(":")[2] not in str(caught.value) or ":" not in entry


def test_unreadable_token_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="pipeline_api_token_file"):
        TokenSet.from_settings(settings(api_token_file=str(tmp_path / "missing")))


def test_tokens_stay_out_of_the_settings_repr() -> None:
    assert ADMIN not in repr(settings(api_tokens=f"admin:{ADMIN}"))
    assert ADMIN not in repr(TokenSet(tuple(parse_tokens(f"admin:{ADMIN}", "t"))))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.53"])
def test_loopback_addresses_are_recognised(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "api.example.org", ""])
def test_binding_beyond_loopback_without_a_token_is_refused(host: str) -> None:
    with pytest.raises(ConfigurationError, match="no token configured"):
        require_safe_bind(host, TokenSet())
    require_safe_bind(host, TokenSet(tuple(parse_tokens(f"read:{READ}", "t"))))


AGENT = "g" * 20


def test_an_agents_token_names_its_pool_and_acts_for_it_alone() -> None:
    tokens = TokenSet(tuple(parse_tokens(f"agent:gpu:{AGENT}, admin:{ADMIN}", "t")))
    agent, admin = tokens.check(AGENT), tokens.check(ADMIN)
    assert agent is not None and admin is not None
    assert (agent.scope, agent.pool) == (Scope.AGENT, "gpu")
    assert agent.name.startswith("agent:gpu:") and AGENT not in agent.name
    assert agent.may_act_for("gpu") and not agent.may_act_for("cpu")
    assert admin.may_act_for("cpu")
    assert Scope.AGENT < Scope.READ  # it reads nothing


@pytest.mark.parametrize("entry, message", [
    ("agent:" + "x" * 20, "agent:POOL:TOKEN"),
    ("agent:bad!:" + "x" * 20, "pool=.bad!."),
    ("agent:gpu:short", "at least 16"),
])
def test_a_malformed_agent_entry_is_refused_naming_its_number_never_the_token(
        entry: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        parse_tokens(f"read:{READ},{entry}", "pipeline_api_tokens")
    assert "entry 2" in str(caught.value)
    assert entry.rpartition(":")[2] not in str(caught.value)
