"""A Redis client from a URL: one server, or the current primary of a Sentinel group.

URLs follow kombu's and Celery's conventions:

* ``redis://[user:password@]host:port/db``, ``rediss://...`` (TLS: the CA and
  the client certificate as ``ssl_ca_certs``, ``ssl_certfile``,
  ``ssl_keyfile`` and ``ssl_cert_reqs`` query parameters), ``unix://path``;
* ``sentinel://[:password@]host:port[/db];sentinel://host2:port;...``: the
  Sentinels of a group whose name is ``pipeline_redis_master_name``
  (``$PIPELINE_REDIS_MASTER_NAME``) or Celery's
  ``broker_transport_options["master_name"]``. The URL's password is the
  primary's; ``sentinel_password`` (query) is the Sentinels' own, if they ask
  for one; ``ssl=true`` (query) speaks TLS to the primary, with the same
  ``ssl_*`` parameters.

A Sentinel client asks the Sentinels for the current primary on each new
connection and drops a connection whose server stopped being the primary
(redis-py's ``SentinelConnectionPool``): every reader and writer of the
pipeline follows a failover by reconnecting.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.sentinel import Sentinel

from pipeline.errors import ConfigurationError

SENTINEL = "sentinel"
_SSL_PARAMS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
              "required": ssl.CERT_REQUIRED, "cert_none": ssl.CERT_NONE,
              "cert_optional": ssl.CERT_OPTIONAL, "cert_required": ssl.CERT_REQUIRED}


def is_sentinel(url: str) -> bool:
    """Whether *url* names Sentinels (``sentinel://...``), not a server."""
    return url.split("://", 1)[0].lower() == SENTINEL


def sentinel_hosts(url: str) -> list[tuple[str, int]]:
    """The (host, port) of each Sentinel of a ``sentinel://a:26379;sentinel://b:26379`` URL.

    Raises:
        ConfigurationError: a part is no ``sentinel://host:port`` URL.
    """
    hosts = []
    for part in url.split(";"):
        parsed = urlsplit(part.strip())
        if parsed.scheme.lower() != SENTINEL or not parsed.hostname:
            raise ConfigurationError(
                f"broker URL part {part!r} is not accepted: expected sentinel://host:port, "
                "the parts separated by ';'")
        hosts.append((parsed.hostname, parsed.port or 26379))
    return hosts


def master_name_of(conf: Any, transport_options: str = "broker_transport_options") -> str:
    """The Sentinel group of *conf*: ``pipeline_redis_master_name``, else Celery's option.

    Raises:
        ConfigurationError: neither is set.
    """
    name = conf.get("pipeline_redis_master_name") or (
        conf.get(transport_options) or {}).get("master_name")
    if not name:
        raise ConfigurationError(
            "a sentinel:// URL needs the name of its Redis group: set "
            "PIPELINE_REDIS_MASTER_NAME (pipeline_redis_master_name) or "
            f"{transport_options}['master_name']")
    return str(name)


def _sentinel_client(url: str, master_name: str, options: dict[str, Any]) -> redis.Redis:
    first = urlsplit(url.split(";", 1)[0].strip())
    query = {k: v[-1] for k, v in parse_qs(first.query).items()}
    db = int((first.path or "/0").strip("/") or 0)
    primary: dict[str, Any] = {"db": db, **options}
    if first.password:
        primary["password"] = unquote(first.password)
    if first.username:
        primary["username"] = unquote(first.username)
    if query.get("ssl", "").lower() in ("1", "true", "yes"):
        primary["ssl"] = True
        for key in _SSL_PARAMS:
            if key in query:
                value: Any = unquote(query[key])
                primary[key] = _CERT_REQS.get(value.lower(), value) \
                    if key == "ssl_cert_reqs" else value
    sentinel_kwargs = {k: v for k, v in options.items()
                       if k in ("socket_timeout", "socket_connect_timeout")}
    if query.get("sentinel_password"):
        sentinel_kwargs["password"] = unquote(query["sentinel_password"])
    group = Sentinel(sentinel_hosts(url), sentinel_kwargs=sentinel_kwargs, **primary)
    client: redis.Redis = group.master_for(master_name)
    return client


def client_for(url: str, master_name: str | None = None, **options: Any) -> redis.Redis:
    """A client on the Redis of *url* (the current primary of a Sentinel group).

    Args:
        url: a ``redis://``, ``rediss://``, ``unix://`` or ``sentinel://`` URL.
        master_name: the Sentinel group (needed for ``sentinel://``).
        options: redis-py client options (``socket_timeout``, ``decode_responses``...).

    Raises:
        ConfigurationError: a ``sentinel://`` URL without a group name, or a bad part.
    """
    if is_sentinel(url):
        if not master_name:
            raise ConfigurationError(
                "a sentinel:// URL needs the name of its Redis group: set "
                "PIPELINE_REDIS_MASTER_NAME")
        return _sentinel_client(url, master_name, options)
    return redis.Redis.from_url(url, **options)
