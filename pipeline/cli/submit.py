"""``pipeline submit TASK [ARGS]...``: publish one job, validated as ``apply_async`` does."""

from __future__ import annotations

import difflib
import json
from typing import Any

import click

from pipeline.cli.context import operator_app, reports_errors
from pipeline.cli.output import json_option, print_json
from pipeline.errors import InvalidJobError
from pipeline.priority import DEFAULT_PRIORITY, level_of, parse_priority


def json_value(text: str, field: str) -> Any:
    """An argument given as JSON; a word that is not JSON is taken as a string."""
    try:
        return json.loads(text)
    except ValueError:
        if text[:1] in "[{\"" or not text.strip():
            raise InvalidJobError(f"{field}={text!r} is not accepted: expected a JSON value "
                                  "(a number, \"text\", [list] or {object}) or a plain word"
                                  ) from None
        return text


def find_task(app: Any, name: str) -> Any:
    """The registered task *name*, with the app's task modules imported.

    Raises:
        InvalidJobError: naming the task and the closest registered names.
    """
    app.loader.import_default_modules()
    task = app.tasks.get(name)
    if task is None:
        known = sorted(n for n in app.tasks if not n.startswith("celery."))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known)}"
        raise InvalidJobError(f"task={name!r} is not registered with the app{hint}")
    return task


@click.command()
@click.argument("task_name", metavar="TASK")
@click.argument("args", nargs=-1)
@click.option("--kwargs", "kwargs_json", default=None, metavar="JSON",
              help="Keyword arguments as a JSON object.")
@click.option("-p", "--priority", default=None,
              help="critical, high, normal (default) or low, or 0-9 (0 = most urgent).")
@click.option("--user", default=None, help="The user the job runs for (one running job each).")
@click.option("--project", default=None, help="The project it counts against.")
@click.option("--model", "models", multiple=True, help="A model it writes (repeatable).")
@click.option("--shared-model", "shared", multiple=True,
              help="A model it only reads, shared with other readers (repeatable).")
@click.option("--countdown", type=float, default=None, help="Seconds to wait before it runs.")
@click.option("--job-id", default=None, help="The job id to use (default: a new UUID).")
@click.option("--agent-pool", default=None, metavar="POOL",
              help="The agent pool that runs it: its agents claim it over HTTP "
                   "(default: the task's own pool, else a Celery worker).")
@json_option
@reports_errors
def submit(task_name: str, args: tuple[str, ...], kwargs_json: str | None,
           priority: str | None, user: str | None, project: str | None,
           models: tuple[str, ...], shared: tuple[str, ...], countdown: float | None,
           job_id: str | None, agent_pool: str | None, as_json: bool) -> None:
    """Publish a job of TASK with ARGS (each a JSON value) and print its id.

    The job goes through the task's own apply_async: a bad priority or resource
    option is refused naming it, and nothing is published.

    \b
    pipeline submit tasks.demo.train bert --user alice --model bert -p high
    pipeline submit tasks.demo.prepare '"logs"' --kwargs '{"seconds": 2}'
    pipeline submit tasks.demo.train bert --user alice --agent-pool gpu
    """
    app = operator_app()
    task = find_task(app, task_name)
    values = [json_value(text, f"argument {n}") for n, text in enumerate(args, start=1)]
    kwargs = json_value(kwargs_json, "kwargs") if kwargs_json is not None else {}
    if not isinstance(kwargs, dict):
        raise InvalidJobError(f"kwargs={kwargs_json!r} is not accepted: expected a JSON object")
    options: dict[str, Any] = {"priority": priority, "user": user, "project": project,
                               "models": list(models) or None, "shared": list(shared) or None,
                               "countdown": countdown, "task_id": job_id,
                               "agent_pool": agent_pool}
    options = {k: v for k, v in options.items() if v is not None}
    if priority is not None and priority.isdigit():
        options["priority"] = int(priority)
    if not hasattr(task, "models"):
        refused = sorted(set(options) & {"user", "project", "models", "shared", "agent_pool"})
        if refused:
            raise InvalidJobError(f"{refused[0]} is not accepted: {task_name} is a plain Celery "
                                  "task, not a PipelineTask; it takes no resource options")
    try:
        result = task.apply_async(tuple(values), kwargs, **options)
    except TypeError as exc:  # Celery checks the arguments against the task's signature
        raise InvalidJobError(f"the arguments do not fit {task_name}: {exc}") from None
    if as_json:
        given = options.get("priority")
        default = task.priority if task.priority is not None else app.conf.task_default_priority
        sent = parse_priority(given) if given is not None else int(default or DEFAULT_PRIORITY)
        print_json({"job_id": result.id, "task": task_name, "args": values, "kwargs": kwargs,
                    "priority": level_of(sent).label, "user": user, "project": project,
                    "models": list(models), "shared_models": list(shared),
                    "countdown": countdown, "agent_pool": agent_pool})
        return
    click.echo(result.id)
