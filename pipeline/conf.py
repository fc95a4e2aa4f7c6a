"""Every ``pipeline_*`` setting, declared once: name, type, default, doc.

Settings live on ``app.conf`` as lowercase ``pipeline_<area>_<name>`` keys. An
unknown ``pipeline_*`` key or a value of the wrong type raises
``ConfigurationError`` when the app is configured, never a silent no-op.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ConfigurationError


@dataclass(frozen=True)
class Setting:
    """One declared setting."""

    name: str
    type: type | tuple[type, ...]
    default: Any
    doc: str
    minimum: float | None = None
    maximum: float | None = None


SETTINGS: tuple[Setting, ...] = (
    # Redis layout
    Setting("pipeline_redis_prefix", str, "pipeline",
            "Hash tag of every pipeline key: all keys share one Redis Cluster slot."),
    # Locks
    Setting("pipeline_lock_lease", (int, float), 30.0,
            "Seconds a hold lasts unless its heartbeat renews it.", 1.0),
    Setting("pipeline_lock_heartbeat", (int, float), 0.0,
            "Seconds between lease renewals; 0 means a third of the lease.", 0.0),
    Setting("pipeline_lock_grant_ttl", (int, float), 30.0,
            "Seconds a job handed its locks at release may take to start before the grant "
            "expires.", 1.0),
    Setting("pipeline_capacity_user", int, 1,
            "Running jobs per user; 0 = unlimited.", 0),
    Setting("pipeline_capacity_model", int, 1,
            "Writers per model (readers share it while no writer holds it); 0 = unlimited.", 0),
    Setting("pipeline_capacity_project", int, 2,
            "Running jobs per project (fair share); 0 = unlimited.", 0),
    Setting("pipeline_concurrency_global", int, 5,
            "Running pipeline jobs in the whole system; 0 = unlimited.", 0),
    Setting("pipeline_serialized", bool, False,
            "Run at most one pipeline job at a time in the whole system."),
    Setting("pipeline_workflow_gap", (int, float), 300.0,
            "Seconds a workflow keeps its locks between two steps while the next step waits "
            "in the queue to start.", 1.0),
    Setting("pipeline_wait_timeout", (int, float), 1800.0,
            "Seconds a parked job may wait before it expires.", 1.0),
    Setting("pipeline_publish_timeout", (int, float), 5.0,
            "Seconds a publish may wait for a Redis that does not answer before it fails "
            "naming the broker (nothing is published then).", 0.5),
    Setting("pipeline_redis_master_name", (str, type(None)), None,
            "Name of the Redis group its Sentinels watch, for `sentinel://` broker and result "
            "URLs (kombu's `broker_transport_options['master_name']` is read too)."),
    Setting("pipeline_redis_wait_replicas", int, 0,
            "Replicas that must have a job's grant and its publish before the pipeline goes "
            "on (Redis `WAIT`); 0 = none. With Sentinel, 1 keeps a failover from losing them.",
            0),
    Setting("pipeline_redis_wait_timeout", (int, float), 0.5,
            "Seconds a `WAIT` for replicas may take; past it the pipeline goes on (and logs "
            "it).", 0.01),
    Setting("pipeline_redis_outage_limit", (int, float), 60.0,
            "Seconds a worker rides out a Redis that does not answer (a crash, a restart, a "
            "failover) for what a finished job still has to write: its result, its release "
            "and events, its acknowledgement. Past it the job is given back to the queue, "
            "never marked failed.", 1.0),
    # Events and store
    Setting("pipeline_events_maxlen", int, 1_000_000,
            "Safety cap of the event stream; the recorder trims what it has written.", 1000),
    Setting("pipeline_store_url", (str, type(None)), None,
            "SQLAlchemy URL of the job store; None = $PIPELINE_DATABASE_URL or SQLite in "
            "the data directory."),
    Setting("pipeline_store_enabled", bool, True,
            "Record jobs, workflows and the audit log in the job store."),
    Setting("pipeline_store_recorder", bool, False,
            "Run the event recorder as a thread in every worker; by default it runs as its "
            "own process (`pipeline recorder`, started by `pipeline up`)."),
    Setting("pipeline_log_retention", (int, float), 7 * 24 * 3600.0,
            "Seconds queue-log rows are kept before the retention sweep deletes them.", 60.0),
    Setting("pipeline_data_dir", str, ".pipeline",
            "Directory of the embedded Redis data and the default SQLite store."),
    # Retries
    Setting("pipeline_retry_max", int, 3,
            "Attempts after the first before a job is dead-lettered.", 0),
    Setting("pipeline_retry_backoff", (int, float), 1.0,
            "Seconds of the first retry delay; doubles with each attempt.", 0.0),
    Setting("pipeline_retry_backoff_max", (int, float), 600.0,
            "Upper bound of a retry delay in seconds.", 0.0),
    Setting("pipeline_retry_jitter", bool, True,
            "Randomise retry delays (equal jitter: half fixed, half random) against stampedes."),
    # Admission and load (pipeline.admission)
    Setting("pipeline_load_gate", bool, True,
            "A worker stops taking new jobs while its host is over `pipeline_load_max_cpu` or "
            "`pipeline_load_max_memory` and resumes below them (running jobs go on)."),
    Setting("pipeline_load_max_cpu", (int, float), 0.8,
            "CPU use above which a worker stops taking jobs: a share of all cores (0.8 = 80 %), "
            "smoothed over `pipeline_load_smoothing` seconds.", 0.01, 1.0),
    Setting("pipeline_load_max_memory", (int, float), 85.0,
            "Memory use of the host, in percent, above which a worker stops taking jobs.",
            1.0, 100.0),
    Setting("pipeline_load_resume_at", (int, float), 0.9,
            "Hysteresis: a paused worker resumes once CPU and memory are both below this share "
            "of their limits (0.9: CPU below 0.72, memory below 76.5 %).", 0.1, 1.0),
    Setting("pipeline_load_smoothing", (int, float), 3.0,
            "Seconds over which CPU readings are smoothed (time constant of an exponential "
            "average; 0 = the last one-second reading).", 0.0),
    Setting("pipeline_agent_heartbeat", (int, float), 2.0,
            "Seconds between two load records of a worker (`pipeline agents status`); 0 = none.",
            0.0),
    Setting("pipeline_agent_timeout", (int, float), 15.0,
            "Seconds after its last load record a worker counts as gone.", 1.0),
    # Limits
    Setting("pipeline_time_limit", (int, float), 300.0,
            "Soft execution time limit of a pipeline job in seconds (the job gets "
            "`SoftTimeLimitExceeded` and fails without a retry); 0 = none. A task's own "
            "`soft_time_limit`/`time_limit` and Celery's `task_*time_limit` win.", 0.0),
    Setting("pipeline_time_limit_grace", (int, float), 30.0,
            "Seconds after the soft limit before the job's process is killed (the hard limit).",
            1.0),
    # REST API, metrics and Flower
    Setting("pipeline_api_tokens", (str, type(None)), None,
            "Bearer tokens of the REST API: `SCOPE:TOKEN` entries (scope `read` or `admin`; "
            "`agent:POOL:TOKEN` for an agent of pool POOL) separated by commas or spaces. "
            "Prefer the token file: it keeps tokens out of the environment."),
    Setting("pipeline_api_token_file", (str, type(None)), None,
            "File of REST API tokens, one `SCOPE:TOKEN` (or `agent:POOL:TOKEN`) a line (`#` "
            "starts a comment)."),
    Setting("pipeline_api_host", str, "127.0.0.1",
            "Address the REST API binds; one off loopback needs a token."),
    Setting("pipeline_api_port", int, 8000, "Port of the REST API.", 0),
    Setting("pipeline_metrics_worker_port", int, 0,
            "Port on which each worker serves its own Prometheus `/metrics`; 0 = off. A "
            "second worker on the host takes the next free port of the ten after it.", 0),
    Setting("pipeline_metrics_worker_host", str, "127.0.0.1",
            "Address a worker's `/metrics` binds."),
    Setting("pipeline_flower_basic_auth", (str, type(None)), None,
            "Flower's basic-auth credentials for `pipeline flower`: `USER:PASSWORD` entries "
            "separated by commas."),
    # Crash safety (pipeline.broker)
    Setting("pipeline_set_aside_max", int, 10_000,
            "Broker items no worker could decode or accept kept in the set-aside list "
            "(`{pipeline}:set_aside`, newest first); the counts go on past it.", 1),
    Setting("pipeline_park_in_fetch", bool, True,
            "Park a job whose resources are visibly held as its worker takes its message, in "
            "the same Lua call, so it never occupies a pool process (off while "
            "`pipeline_redis_wait_replicas` asks for replicas)."),
    Setting("pipeline_max_deliveries", int, 3,
            "Deliveries of a job whose process dies running it (out of memory, a crash) "
            "before it is dead-lettered with the reason \"worker lost\".", 1),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
PREFIX = "pipeline_"


def _type_name(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join("None" if t is type(None) else t.__name__ for t in types)


def check_value(setting: Setting, value: Any) -> None:
    """Raise ``ConfigurationError`` unless *value* fits *setting*."""
    wrong_bool = isinstance(value, bool) and setting.type is not bool
    if wrong_bool or not isinstance(value, setting.type):
        raise ConfigurationError(
            f"{setting.name}={value!r} has the wrong type: expected "
            f"{_type_name(setting.type)} ({setting.doc})"
        )
    if setting.minimum is not None and isinstance(value, int | float) and value < setting.minimum:
        raise ConfigurationError(
            f"{setting.name}={value!r} is too small: expected at least {setting.minimum}"
        )
    if setting.maximum is not None and isinstance(value, int | float) and value > setting.maximum:
        raise ConfigurationError(
            f"{setting.name}={value!r} is too large: expected at most {setting.maximum}"
        )


def validate(conf: Mapping[str, Any]) -> None:
    """Check every ``pipeline_*`` key of a Celery configuration.

    Raises:
        ConfigurationError: naming the first unknown key or badly typed value.
    """
    for key in list(conf.keys()):
        if not isinstance(key, str) or not key.lower().startswith(PREFIX):
            continue
        setting = BY_NAME.get(key)
        if setting is None:
            known = ", ".join(sorted(BY_NAME))
            raise ConfigurationError(f"unknown setting {key!r}: the pipeline knows {known}")
        check_value(setting, conf[key])


def _parse_env(setting: Setting, var: str, raw: str) -> Any:
    types = setting.type if isinstance(setting.type, tuple) else (setting.type,)
    if type(None) in types and raw.strip().lower() in ("", "none", "null"):
        return None
    if bool in types:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    else:
        for kind in (int, float, str):
            if kind in types:
                try:
                    return kind(raw)
                except ValueError:
                    continue
    raise ConfigurationError(
        f"{var}={raw!r} is not accepted: expected {_type_name(setting.type)} ({setting.doc})"
    )


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings given as ``PIPELINE_<NAME>`` environment variables, typed.

    ``PIPELINE_LOCK_LEASE=60`` sets ``pipeline_lock_lease``. Only declared
    settings are read, so other ``PIPELINE_*`` variables (the broker URL) pass.

    Raises:
        ConfigurationError: naming the variable whose value has the wrong type.
    """
    found: dict[str, Any] = {}
    for setting in SETTINGS:
        var = setting.name.upper()
        if var in environ:
            value = _parse_env(setting, var, environ[var])
            check_value(setting, value)
            found[setting.name] = value
    return found


def defaults() -> dict[str, Any]:
    """Every setting with its default."""
    return {s.name: s.default for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """A typed, read-once view of the settings the hot path needs."""

    redis_prefix: str
    lease: float
    heartbeat: float
    grant_ttl: float
    capacity_user: int
    capacity_model: int
    capacity_project: int
    capacity_global: int
    wait_timeout: float
    publish_timeout: float
    outage_limit: float
    master_name: str | None
    replicas_to_wait: int
    replica_wait_timeout: float
    workflow_gap: float
    events_maxlen: int
    retry_max: int
    retry_backoff: float
    retry_backoff_max: float
    retry_jitter: bool
    store_url: str
    store_enabled: bool
    store_recorder: bool
    log_retention: float
    data_dir: str
    serialized: bool
    load_gate: bool
    load_max_cpu: float
    load_max_memory: float
    load_resume_at: float
    load_smoothing: float
    agent_heartbeat: float
    agent_timeout: float
    time_limit: float
    time_limit_grace: float
    # Secrets: kept out of the repr, so a logged Settings never shows them.
    api_tokens: str | None = field(default=None, repr=False)
    api_token_file: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    metrics_worker_port: int = 0
    metrics_worker_host: str = "127.0.0.1"
    flower_basic_auth: str | None = field(default=None, repr=False)
    set_aside_max: int = 10_000
    max_deliveries: int = 3
    park_in_fetch: bool = True


def store_url_from(conf: Mapping[str, Any]) -> str:
    """The job store URL: setting, then ``$PIPELINE_DATABASE_URL``, then SQLite."""
    url = conf.get("pipeline_store_url") or os.environ.get("PIPELINE_DATABASE_URL")
    if url:
        return str(url)
    data_dir = os.path.abspath(str(conf.get("pipeline_data_dir") or ".pipeline"))
    return f"sqlite:///{os.path.join(data_dir, 'pipeline.db')}"


def broker_redis_url(app: Any) -> str:
    """The broker URL of *app* as a redis-py URL (``redis://`` / ``rediss://`` / ``unix://``)."""
    url = str(app.conf.broker_url or "redis://127.0.0.1:6379/0")
    if url.startswith("redis+socket://"):
        return "unix://" + url[len("redis+socket://"):]
    if url.startswith("socket://"):
        return "unix://" + url[len("socket://"):]
    return url


def read(conf: Mapping[str, Any]) -> Settings:
    """Validate *conf* and return the typed settings (defaults filled in)."""
    validate(conf)

    def get(name: str) -> Any:
        value = conf.get(name)
        return BY_NAME[name].default if value is None else value

    lease = float(get("pipeline_lock_lease"))
    heartbeat = float(get("pipeline_lock_heartbeat")) or lease / 3
    serialized = bool(get("pipeline_serialized"))
    return Settings(
        redis_prefix=get("pipeline_redis_prefix"),
        lease=lease,
        heartbeat=heartbeat,
        grant_ttl=float(get("pipeline_lock_grant_ttl")),
        capacity_user=get("pipeline_capacity_user"),
        capacity_model=get("pipeline_capacity_model"),
        capacity_project=get("pipeline_capacity_project"),
        capacity_global=1 if serialized else get("pipeline_concurrency_global"),
        wait_timeout=float(get("pipeline_wait_timeout")),
        publish_timeout=float(get("pipeline_publish_timeout")),
        outage_limit=float(get("pipeline_redis_outage_limit")),
        master_name=conf.get("pipeline_redis_master_name") or (
            conf.get("broker_transport_options") or {}).get("master_name"),
        replicas_to_wait=get("pipeline_redis_wait_replicas"),
        replica_wait_timeout=float(get("pipeline_redis_wait_timeout")),
        workflow_gap=float(get("pipeline_workflow_gap")),
        events_maxlen=get("pipeline_events_maxlen"),
        retry_max=get("pipeline_retry_max"),
        retry_backoff=float(get("pipeline_retry_backoff")),
        retry_backoff_max=float(get("pipeline_retry_backoff_max")),
        retry_jitter=bool(get("pipeline_retry_jitter")),
        store_url=store_url_from(conf),
        store_enabled=bool(get("pipeline_store_enabled")),
        store_recorder=bool(get("pipeline_store_recorder")),
        log_retention=float(get("pipeline_log_retention")),
        data_dir=get("pipeline_data_dir"),
        serialized=serialized,
        load_gate=bool(get("pipeline_load_gate")),
        load_max_cpu=float(get("pipeline_load_max_cpu")),
        load_max_memory=float(get("pipeline_load_max_memory")),
        load_resume_at=float(get("pipeline_load_resume_at")),
        load_smoothing=float(get("pipeline_load_smoothing")),
        agent_heartbeat=float(get("pipeline_agent_heartbeat")),
        agent_timeout=float(get("pipeline_agent_timeout")),
        time_limit=float(get("pipeline_time_limit")),
        time_limit_grace=float(get("pipeline_time_limit_grace")),
        api_tokens=conf.get("pipeline_api_tokens"),
        api_token_file=conf.get("pipeline_api_token_file"),
        api_host=get("pipeline_api_host"),
        api_port=get("pipeline_api_port"),
        metrics_worker_port=get("pipeline_metrics_worker_port"),
        metrics_worker_host=get("pipeline_metrics_worker_host"),
        flower_basic_auth=conf.get("pipeline_flower_basic_auth"),
        set_aside_max=get("pipeline_set_aside_max"),
        park_in_fetch=bool(get("pipeline_park_in_fetch")),
        max_deliveries=get("pipeline_max_deliveries"),
    )
