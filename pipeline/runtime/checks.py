"""Checks of the services the pipeline is given: Redis and the job store's database.

Each check returns :class:`CheckResult` rows that say what is wrong and how to
fix it; ``pipeline check`` prints them and exits non-zero on any failure, and
``pipeline up`` / ``pipeline worker`` refuse to start on an unsafe Redis.

Redis must be 6.2 or newer (the lock scripts and kombu's transport use its
commands) and must never evict keys: a queued job, a lock or a parked job that
Redis drops under memory pressure is lost work, so ``maxmemory-policy`` must be
``noeviction``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import redis

from pipeline.errors import ConfigurationError, ServiceError, StoreError
from pipeline.runtime.redisurl import client_for

OK = "ok"
WARN = "warn"
FAIL = "fail"
MIN_REDIS = (6, 2)
SAFE_POLICY = "noeviction"


@dataclass(frozen=True)
class CheckResult:
    """One finding: what was checked, ``ok``/``warn``/``fail``, and what it means."""

    name: str
    level: str
    message: str

    @property
    def failed(self) -> bool:
        """Whether this finding makes the check fail."""
        return self.level == FAIL


_SECRET_QUERY = re.compile(r"([?&](?:password|sentinel_password)=)[^&;]*")


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def redact(url: str) -> str:
    """*url* without its passwords.

    Several URLs joined by ``;`` (a Sentinel list) are each redacted, and so
    are ``password`` and ``sentinel_password`` query parameters.
    """
    return ";".join(_redact_one(part) for part in url.split(";"))


def _redact_one(url: str) -> str:
    url = _SECRET_QUERY.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ':'}***@{host}"


def check_redis(url: str, timeout: float = 3.0,
                master_name: str | None = None) -> list[CheckResult]:
    """Check that the Redis at *url* answers, is recent enough and never evicts keys.

    For a ``sentinel://`` URL, the current primary of the group *master_name*.
    """
    shown = redact(url)
    try:
        client = client_for(url, master_name, socket_timeout=timeout,
                            socket_connect_timeout=timeout, decode_responses=True)
    except ConfigurationError as exc:
        return [CheckResult("redis", FAIL, str(exc))]
    try:
        try:
            client.ping()
            info: dict[str, Any] = client.info("server")
        except (redis.RedisError, OSError) as exc:
            return [CheckResult("redis", FAIL, f"Redis at {shown} does not answer: {exc}. "
                                "Start it, or set PIPELINE_BROKER_URL to one that runs")]
        results = [CheckResult("redis", OK, f"Redis at {shown} answers")]
        results.append(_check_version(str(info.get("redis_version", "0"))))
        results.append(_check_policy(client))
        return results
    finally:
        client.close()


def _check_version(version: str) -> CheckResult:
    wanted = ".".join(map(str, MIN_REDIS))
    if _version(version) < MIN_REDIS:
        return CheckResult("redis version", FAIL,
                           f"redis_version={version} is too old: the pipeline needs "
                           f"Redis {wanted} or newer")
    return CheckResult("redis version", OK, f"redis_version={version} (>= {wanted})")


def _check_policy(client: redis.Redis) -> CheckResult:
    try:
        reply: dict[Any, Any] = client.config_get("maxmemory-policy")
    except redis.RedisError as exc:
        return CheckResult("maxmemory-policy", WARN,
                           f"maxmemory-policy cannot be read ({exc}); make sure it is "
                           f"{SAFE_POLICY}, or Redis may drop queued jobs and locks")
    policy = str(reply.get("maxmemory-policy", ""))
    if policy != SAFE_POLICY:
        return CheckResult(
            "maxmemory-policy", FAIL,
            f"maxmemory-policy={policy} lets Redis evict keys, losing queued jobs, locks "
            f"and parked jobs under memory pressure: set maxmemory-policy {SAFE_POLICY} "
            f"(CONFIG SET maxmemory-policy {SAFE_POLICY}, and in redis.conf)")
    return CheckResult("maxmemory-policy", OK, f"maxmemory-policy={policy}")


def require_safe_redis(url: str) -> None:
    """Raise unless the Redis at *url* passes :func:`check_redis`.

    Raises:
        ServiceError: naming every failed finding.
    """
    failures = [r.message for r in check_redis(url) if r.failed]
    if failures:
        raise ServiceError("; ".join(failures))


def sqlalchemy_url(url: str) -> str:
    """*url* with the psycopg 3 driver for plain ``postgresql://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def check_database(url: str) -> list[CheckResult]:
    """Check that the job store's database answers and its schema is migrated."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    try:
        parsed = make_url(sqlalchemy_url(url))
    except (SQLAlchemyError, ValueError) as exc:
        return [CheckResult("database", FAIL, f"database URL {url!r} is not valid: {exc}")]
    shown = parsed.render_as_string(hide_password=True)
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:") \
            and not os.path.exists(database):
        return [CheckResult("database", FAIL, f"database {shown} does not exist yet: create "
                            "it with `pipeline db upgrade`")]
    engine = create_engine(parsed, pool_pre_ping=False)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(exc).splitlines()[0]
        return [CheckResult("database", FAIL, f"database {shown} does not answer: {reason}")]
    finally:
        engine.dispose()
    return [CheckResult("database", OK, f"database {shown} answers"), _check_schema(url)]


def _check_schema(url: str) -> CheckResult:
    from pipeline.store.session import check_schema, create_store_engine

    engine = create_store_engine(url)
    try:
        check_schema(engine)
    except StoreError as exc:
        return CheckResult("schema", FAIL, str(exc))
    finally:
        engine.dispose()
    return CheckResult("schema", OK, "schema is at the current migration")
