"""What a job needs: the resource set of a call or a workflow.

A job needs its user, its project, each of its models, and one global slot.
Each is a :class:`Claim` on a resource id (``user:alice``, ``model:bert``,
``project:nlp``, ``global``) with a mode (exclusive, or shared for readers of a
model) and the capacity of its kind. A kind whose capacity is 0 (unlimited)
is not locked at all.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from pipeline.conf import Settings
from pipeline.errors import InvalidJobError

EXCLUSIVE = "x"
SHARED = "s"
KINDS = ("user", "project", "model", "global")
MAX_NAME = 200
#: Control characters separate the fields of the lock records: never in a name or id.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Claim(NamedTuple):
    """One resource a job needs: ``resource`` id, ``mode`` and ``capacity``.

    A named tuple: every job builds and sorts a few of them, and tuples are
    built and compared several times faster than dataclasses.
    """

    resource: str
    mode: str
    capacity: int


@dataclass(frozen=True)
class Demand:
    """The resources a call declares, before capacities are applied."""

    user: str | None = None
    project: str | None = None
    models: tuple[str, ...] = ()
    shared_models: tuple[str, ...] = ()
    workflow: str | None = None

    def union(self, other: Demand) -> Demand:
        """Both demands together (a workflow's steps); a write beats a read of one model."""
        user = _single("user", self.user, other.user)
        project = _single("project", self.project, other.project)
        models = tuple(dict.fromkeys(self.models + other.models))
        shared = tuple(m for m in dict.fromkeys(self.shared_models + other.shared_models)
                       if m not in models)
        return Demand(user, project, models, shared, self.workflow or other.workflow)


def _single(field: str, left: str | None, right: str | None) -> str | None:
    if left is not None and right is not None and left != right:
        raise InvalidJobError(
            f"{field}={right!r} conflicts with {field}={left!r}: a job or workflow has one {field}"
        )
    return left if left is not None else right


def check_id(field: str, value: Any) -> str:
    """Validate a job or workflow id: any string without control characters."""
    if not isinstance(value, str) or not value or CONTROL.search(value):
        raise InvalidJobError(
            f"{field}={value!r} is not accepted: expected a non-empty string without "
            f"control characters"
        )
    return value


def check_name(field: str, value: Any) -> str:
    """Validate one resource name (a user, project or model)."""
    if (not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME
            or CONTROL.search(value)):
        raise InvalidJobError(
            f"{field}={value!r} is not accepted: expected a non-empty string of at most "
            f"{MAX_NAME} characters without control characters"
        )
    return value


def check_models(field: str, value: Any) -> tuple[str, ...]:
    """Validate a model list: one name or an iterable of names."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (check_name(field, value),)
    if not isinstance(value, Iterable) or isinstance(value, Mapping | bytes):
        raise InvalidJobError(
            f"{field}={value!r} is not accepted: expected a model name or a list of names"
        )
    return tuple(dict.fromkeys(check_name(field, item) for item in value))


def demand_from_options(options: dict[str, Any], task_models: tuple[str, ...] = (),
                        task_shared: tuple[str, ...] = ()) -> Demand:
    """Pop ``user``, ``project``, ``models`` and ``shared`` from apply_async options.

    ``shared`` is ``True`` (every model of the call is read, not written) or a
    list of models the call only reads.
    """
    user = options.pop("user", None)
    project = options.pop("project", None)
    call_models = check_models("models", options.pop("models", None))
    models = task_models + call_models
    shared_opt = options.pop("shared", None)
    if shared_opt is True:
        # The call's own models are read; a model the task itself writes stays exclusive.
        shared = call_models + task_shared
        models = task_models
    elif shared_opt in (None, False):
        shared = task_shared
    else:
        shared = task_shared + check_models("shared", shared_opt)
    models = tuple(dict.fromkeys(models))
    shared = tuple(m for m in dict.fromkeys(shared) if m not in models)
    return Demand(
        user=None if user is None else check_name("user", user),
        project=None if project is None else check_name("project", project),
        models=models,
        shared_models=shared,
    )


#: Options of Celery's ``apply_async``, ``send_task``, ``as_task_v2`` and kombu's
#: ``Producer.publish`` (anything else becomes a message property, as in Celery);
#: skipped without a closer look by :func:`check_option_names`.
CELERY_OPTIONS = frozenset({
    "add_to_parent", "argsrepr", "chain", "chord", "compression", "confirm_timeout",
    "connection", "content_encoding", "content_type", "correlation_id", "countdown",
    "declare", "delivery_mode", "eta", "exchange", "exchange_type", "expiration", "expires",
    "group_id", "group_index", "headers", "ignore_result", "immediate", "kwargsrepr", "link",
    "link_error", "mandatory", "message_id", "now", "origin", "parent_id", "priority",
    "producer", "publisher", "queue", "replaced_task_nesting", "reply_to", "result_cls",
    "retries", "retry", "retry_policy", "root_id", "router", "routing_key", "serializer",
    "shadow", "soft_time_limit", "stamped_headers", "stamps", "task_id", "task_type",
    "time_limit", "timeout", "timezone", "workflow_name",
})
RESOURCE_OPTIONS = ("user", "project", "models", "shared")
#: Parts of an option name that say it is about a resource (``user_id``,
#: ``username``, ``proj``, ``Model``, ``model_names``, ``shared_models``): the
#: resource option each one means.
RESOURCE_PARTS = (("user", "user"), ("usr", "user"), ("proj", "project"),
                  ("model", "models"), ("share", "shared"))
#: Whole words of an option name that do (``readonly``, ``read_only``, ``owner``).
RESOURCE_WORDS = {"owner": "user", "read": "shared", "reads": "shared", "reader": "shared",
                  "readers": "shared", "readonly": "shared"}
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


def declared_models(task: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The models a task declares (written, read).

    A class attribute was checked when the task was defined
    (``PipelineTask.__init_subclass__``); anything else (a property, an
    instance attribute) may hold anything and is checked here.
    """
    return _declared(task, "models"), _declared(task, "shared_models")


def _declared(task: Any, option: str) -> tuple[str, ...]:
    value = getattr(task, option, ())
    if value is getattr(type(task), option, None) and isinstance(value, tuple):
        return value
    return check_models(option, value)


def check_option_names(options: Mapping[str, Any]) -> None:
    """Refuse an option that looks like a resource option but is not one.

    ``model=``, ``users=``, ``user_id=``, ``username=``, ``proj=``,
    ``shared_models=``: Celery passes unknown options on as message
    properties, so such an option would silently run the job without that lock.

    Raises:
        InvalidJobError: naming the option, the one probably meant and the
            resource options.
    """
    stamped = options.get("stamped_headers") or ()
    for name in options:
        if name in CELERY_OPTIONS or name in RESOURCE_OPTIONS or name in stamped:
            continue  # stamps (Celery's canvas stamping) arrive as options too
        meant = _resource_meant(name)
        if meant:
            raise InvalidJobError(
                f"{name}={options[name]!r} is not accepted: it is no option of the pipeline's "
                f"(did you mean {meant}=?); the resource options are "
                f"{', '.join(f'{o}=' for o in RESOURCE_OPTIONS)} (shared=True makes the call's "
                "models reads)")


def _resource_meant(name: Any) -> str | None:
    """The resource option an unknown option name seems to be about, if any."""
    if not isinstance(name, str):
        return None
    letters = "".join(ch for ch in name.lower() if ch.isalpha())
    for part, option in RESOURCE_PARTS:
        if part in letters:
            return option
    for word in _WORD.findall(name):
        if word.lower() in RESOURCE_WORDS:
            return RESOURCE_WORDS[word.lower()]
    if "readonly" in letters:
        return "shared"
    close = difflib.get_close_matches(name.lower(), RESOURCE_OPTIONS, n=1, cutoff=0.75)
    return close[0] if close else None


def claims(demand: Demand, settings: Settings) -> tuple[Claim, ...]:
    """The sorted claims of *demand* under the configured capacities."""
    out: list[Claim] = []
    if demand.user is not None and settings.capacity_user:
        out.append(Claim(f"user:{demand.user}", EXCLUSIVE, settings.capacity_user))
    if demand.project is not None and settings.capacity_project:
        out.append(Claim(f"project:{demand.project}", EXCLUSIVE, settings.capacity_project))
    if settings.capacity_model:
        out.extend(Claim(f"model:{m}", EXCLUSIVE, settings.capacity_model) for m in demand.models)
        out.extend(Claim(f"model:{m}", SHARED, settings.capacity_model)
                   for m in demand.shared_models)
    if settings.capacity_global:
        out.append(Claim("global", EXCLUSIVE, settings.capacity_global))
    return tuple(sorted(out))
