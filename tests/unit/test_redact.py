"""Passwords never shown: a broker URL as `check`, the logs and errors print it."""

from __future__ import annotations

from pipeline.runtime.checks import redact


def test_a_password_in_a_redis_url_is_hidden_and_the_user_kept() -> None:
    assert redact("rediss://pipeline:s3cret@h:6380/0?ssl_cert_reqs=required") == (
        "rediss://pipeline:***@h:6380/0?ssl_cert_reqs=required")
    assert redact("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"


def test_every_url_of_a_sentinel_list_is_redacted() -> None:
    shown = redact("sentinel://:pw1@h1:26379;sentinel://:pw2@h2:26379;sentinel://h3:26379")
    assert "pw1" not in shown and "pw2" not in shown
    assert shown == "sentinel://:***@h1:26379;sentinel://:***@h2:26379;sentinel://h3:26379"


def test_password_query_parameters_are_redacted() -> None:
    shown = redact("sentinel://h1:26379?sentinel_password=sp&password=p&db=0")
    assert "sp&" not in shown and "=p&" not in shown
    assert shown == "sentinel://h1:26379?sentinel_password=***&password=***&db=0"
