"""``pipeline agent``: the reference agent, taking a pool's jobs over HTTP.

It needs no broker and no app: only the API's address, a token of the pool
(``agent:POOL:TOKEN``, from a file: never on the command line) and what to
run (:mod:`pipeline.remote.runner`).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from pipeline.cli.output import json_lines_option, say
from pipeline.errors import ConfigurationError, InvalidJobError
from pipeline.job.pools import check_pool
from pipeline.remote.client import ApiClient
from pipeline.remote.runner import Agent, default_agent_id, load_handler


def read_token(path: str, pool: str) -> str:
    """The bearer token in *path*: ``agent:POOL:TOKEN`` (POOL must be *pool*) or TOKEN alone.

    Raises:
        ConfigurationError: the file cannot be read, is empty, or names another pool
            (the message never holds the token).
    """
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"--token-file={path!r} cannot be read: "
                                 f"{exc.strerror or exc}") from exc
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    entries = [line for line in lines if line]
    if len(entries) != 1:
        raise ConfigurationError(f"--token-file={path!r} is not accepted: expected one line, "
                                 "agent:POOL:TOKEN or TOKEN")
    entry = entries[0]
    if entry.startswith("agent:"):
        named, _, entry = entry[len("agent:"):].partition(":")
        if named != pool:
            raise ConfigurationError(f"--token-file={path!r} holds a token of pool {named!r}, "
                                     f"not of --pool {pool!r}")
    return entry


@click.command()
@click.option("--api", "api_url", required=True, metavar="URL",
              help="The REST API, e.g. https://control.example:8000.")
@click.option("--token-file", required=True, metavar="FILE",
              help="A file holding the pool's token (agent:POOL:TOKEN, or TOKEN).")
@click.option("--pool", required=True, help="The agent pool to take jobs from.")
@click.option("--agent-id", default=None,
              help="This agent's name, recorded on every job it runs (default: HOST-PID).")
@click.option("--handler", default=None, metavar="MODULE:FUNCTION",
              help="Run each job by calling FUNCTION(job) instead of a command.")
@click.option("--wait", type=click.FloatRange(0, 60), default=20.0, show_default=True,
              help="Seconds one claim waits for a job (a long poll).")
@click.option("--no-retry", is_flag=True,
              help="A failed job fails at once (default: retried by the task's policy).")
@click.option("--max-jobs", type=click.IntRange(0), default=0,
              help="Stop after this many jobs (0: run until stopped).")
@click.option("-v", "--verbose", is_flag=True, help="Log each request that is retried.")
@json_lines_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def agent(api_url: str, token_file: str, pool: str, agent_id: str | None, handler: str | None,
          wait: float, no_retry: bool, max_jobs: int, verbose: bool, as_json: bool,
          command: tuple[str, ...]) -> None:
    """Take jobs of a pool over HTTP and run each with COMMAND (or --handler).

    COMMAND gets the job as JSON on its stdin (id, task, args, kwargs, priority,
    resources, attempt); what it prints is the job's result (JSON, or text) and
    its exit code says whether it succeeded. The agent heartbeats while a job
    runs; SIGTERM stops the job and gives it back to the pool.

    \b
    pipeline agent --api http://127.0.0.1:8000 --token-file /etc/pipeline/agent.token \\
        --pool gpu -- python run_job.py
    """
    try:
        check_pool(pool, "--pool")
    except InvalidJobError as exc:
        raise click.UsageError(str(exc)) from None
    if (handler is None) == (not command):
        raise click.UsageError("give a COMMAND (after --) or --handler MODULE:FUNCTION, "
                               "not both and not neither")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("pipeline.remote.client").setLevel(logging.ERROR)
    try:
        token = read_token(token_file, pool)
        function = load_handler(handler) if handler is not None else None
    except (ConfigurationError, ValueError, ImportError) as exc:
        raise click.ClickException(str(exc)) from exc
    stopping = threading.Event()

    def stop(signum: int, _: Any) -> None:
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    name = agent_id or default_agent_id()
    runner = Agent(ApiClient(api_url, token, stopping=stopping), pool,
                   name, command=command or None, handler=function,
                   wait=wait, retry=not no_retry, max_jobs=max_jobs)
    say(as_json, "starting", f"pipeline agent {name}: taking jobs of pool {pool} from "
        f"{api_url}", err=True, agent_id=name, pool=pool, api=api_url)
    code = runner.run()
    say(as_json, "stopped", f"pipeline agent {name}: stopped (exit code {code})", err=True,
        agent_id=name, exit_code=code)
    sys.exit(code)
