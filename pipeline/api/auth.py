"""Bearer tokens of the REST API: where they come from, how a request is checked.

Tokens come from ``pipeline_api_tokens`` (``SCOPE:TOKEN`` entries separated by
commas or spaces) and ``pipeline_api_token_file`` (one entry a line, ``#``
comments). A scope is ``read`` (every ``GET``) or ``admin`` (everything, the
actions included); an agent's token is ``agent:POOL:TOKEN``: it claims and
reports the jobs of pool POOL and can do nothing else (:mod:`pipeline.api.agents`).

A presented token is compared with every configured token with
:func:`hmac.compare_digest`, all of them every time, so neither the answer nor
its timing says how much of a token matched or which entry it was. Tokens are
never logged: errors name the entry's position or the file, never its text,
and the audit trail names a token by a short fingerprint of its hash.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.conf import Settings
from pipeline.errors import ConfigurationError, InvalidJobError
from pipeline.job.pools import check_pool
from pipeline.runtime.net import is_loopback

MIN_TOKEN_LENGTH = 16


class Scope(enum.IntEnum):
    """What a token may do; a higher scope includes the lower ones, but for AGENT.

    An AGENT token claims and reports the jobs of its one pool and nothing else
    (not even a read); an ADMIN token may act as an agent of any pool.
    """

    AGENT = 0
    READ = 1
    ADMIN = 2


@dataclass(frozen=True)
class Token:
    """One configured token (its text kept out of the repr)."""

    scope: Scope
    secret: bytes = field(repr=False)
    #: The pool of an agent's token ("" for the other scopes).
    pool: str = ""

    @property
    def fingerprint(self) -> str:
        """A short name for audit rows: the start of the token's SHA-256, not the token."""
        return hashlib.sha256(self.secret).hexdigest()[:12]


@dataclass(frozen=True)
class Caller:
    """Who made a request: the scope of the token and its audit name."""

    scope: Scope
    name: str
    #: The pool of an agent's token ("" for the other scopes).
    pool: str = ""

    def may_act_for(self, pool: str) -> bool:
        """Whether the caller may claim and report the jobs of *pool* (admins: any pool)."""
        return self.scope >= Scope.ADMIN or (self.scope is Scope.AGENT and self.pool == pool)


def _parse_entry(entry: str, where: str) -> Token:
    scope_name, sep, secret = entry.partition(":")
    try:
        scope = Scope[scope_name.strip().upper()]
    except KeyError:
        scope = None
    if not sep or scope is None:
        raise ConfigurationError(
            f"{where} is not accepted: expected SCOPE:TOKEN with scope read or admin, or "
            "agent:POOL:TOKEN")
    pool = ""
    if scope is Scope.AGENT:
        pool, sep, secret = secret.partition(":")
        try:
            check_pool(pool, "pool")
        except InvalidJobError as exc:
            raise ConfigurationError(f"{where} is not accepted: expected agent:POOL:TOKEN; "
                                     f"{exc}") from None
        if not sep:
            raise ConfigurationError(f"{where} is not accepted: expected agent:POOL:TOKEN")
    if len(secret) < MIN_TOKEN_LENGTH:
        raise ConfigurationError(
            f"{where} is not accepted: the token has {len(secret)} characters, expected at "
            f"least {MIN_TOKEN_LENGTH} (e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')")
    return Token(scope, secret.encode(), pool)


def parse_tokens(text: str, source: str) -> list[Token]:
    """Tokens of *text*: entries separated by commas, spaces or lines; ``#`` comments.

    Args:
        text: the setting's value or the file's content.
        source: what to name in errors (the setting or the file), never a token.

    Raises:
        ConfigurationError: naming the entry's number and what is accepted.
    """
    entries = [e for line in text.splitlines()
               for e in re.split(r"[,\s]+", line.split("#", 1)[0]) if e]
    return [_parse_entry(entry, f"{source} entry {number}")
            for number, entry in enumerate(entries, start=1)]


@dataclass(frozen=True)
class TokenSet:
    """Every configured token."""

    tokens: tuple[Token, ...] = field(default=(), repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSet:
        """Read ``pipeline_api_tokens`` and ``pipeline_api_token_file``.

        Raises:
            ConfigurationError: a malformed entry, or a token file that cannot be read.
        """
        tokens = parse_tokens(settings.api_tokens or "", "pipeline_api_tokens")
        if settings.api_token_file:
            path = Path(settings.api_token_file).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(
                    f"pipeline_api_token_file={str(path)!r} cannot be read: "
                    f"{exc.strerror or exc}") from exc
            tokens += parse_tokens(text, f"token file {path}")
        return cls(tuple(tokens))

    def __bool__(self) -> bool:
        return bool(self.tokens)

    def check(self, presented: str) -> Caller | None:
        """The caller a presented token belongs to, or None.

        Every configured token is compared, whatever matched before, in
        constant time for each.
        """
        given = presented.encode()
        found: Token | None = None
        for token in self.tokens:
            if hmac.compare_digest(token.secret, given) and found is None:
                found = token
        if found is None:
            return None
        if found.scope is Scope.AGENT:
            return Caller(found.scope, f"agent:{found.pool}:{found.fingerprint}", found.pool)
        return Caller(found.scope, f"api:{found.scope.name.lower()}:{found.fingerprint}")


def require_safe_bind(host: str, tokens: TokenSet, what: str = "the REST API") -> None:
    """Refuse to serve on a non-loopback address without a token configured.

    Raises:
        ConfigurationError: naming the address and the settings to set.
    """
    if tokens or is_loopback(host):
        return
    raise ConfigurationError(
        f"{what} would listen on {host}, reachable from other machines, with no token "
        "configured: set pipeline_api_tokens or pipeline_api_token_file (SCOPE:TOKEN, "
        "scope read or admin), or bind 127.0.0.1")
