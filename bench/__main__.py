"""``python -m bench``: run the scenarios and print one JSON document.

Usage::

    python -m bench [--quick] [--scenario NAME ...] [--redis-url URL] [--rounds N] [--out FILE]
    python -m bench chaos [--quick] [--only N ...]     (the fault suite: bench/chaos.py)

``--scenario speed`` runs the group of scenarios behind issue 15's speed table
(``bench/speed.py``) and prints that table. After every run a table of every
ratio with the spread of its paired ratios goes to stderr (after the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import redis

from bench import cost, speed, summary

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the pipeline against plain Celery on the same Redis.")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and one round, for a fast look")
    parser.add_argument("--scenario", action="append", metavar="NAME",
                        help="run only this scenario, or the group 'speed' (repeatable); "
                             "default all")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help=f"a dedicated Redis database, FLUSHED before each scenario "
                             f"(default {DEFAULT_REDIS_URL})")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating rounds per comparison (default 3, 1 with --quick)")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON document to FILE")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    db = urlparse(args.redis_url).path.strip("/")
    if not db.isdigit() or db == "0":
        parser.error(f"--redis-url={args.redis_url!r}: name a dedicated database other than 0 "
                     "(for example redis://127.0.0.1:6379/15); it is flushed")
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds={args.rounds}: expected at least 1")
    return args


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def machine(redis_url: str) -> dict[str, Any]:
    """What the figures were measured on."""
    server = redis.Redis.from_url(redis_url).info("server")
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "celery": _version("celery"),
        "kombu": _version("kombu"),
        "redis_py": _version("redis"),
        "hiredis": _version("hiredis"),
        "redis_server": server.get("redis_version"),
    }


def code_version() -> dict[str, Any]:
    """The commit measured, and which product files differed from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=False)
        return done.stdout.rstrip("\n")

    changed = [line[3:] for line in git("status", "--porcelain", "--", "pipeline", "tasks",
                                        "celeryconfig.py").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted": changed}


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the selected scenarios; exit 1 if any of them failed.

    ``python -m bench chaos ...`` runs the fault suite instead (:mod:`bench.chaos`).
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["chaos"]:
        from bench.chaos import main as chaos

        return chaos(argv[1:])
    args = parse_args(argv)
    # Both apps read the broker URL from the environment on first import.
    from bench.targets import configure_env

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    configure_env(args.redis_url, workdir)
    from bench.harness import Context
    from bench.scenarios import discover

    # Background runs ignore SIGINT; make SIGTERM unwind too, so workers are killed.
    signal.signal(signal.SIGTERM, _exit_on_signal)

    scenarios = discover()
    if args.list:
        shutil.rmtree(workdir, ignore_errors=True)
        for scenario in scenarios.values():
            print(f"{scenario.name:24} {scenario.summary}")
        print(f"{speed.GROUP:24} group: {', '.join(speed.SCENARIOS)} (issue 15's speed table)")
        return 0
    selected = _expand(args.scenario or list(scenarios))
    unknown = [name for name in selected if name not in scenarios]
    if unknown:
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"unknown scenario {', '.join(unknown)}: expected {', '.join(scenarios)} "
              f"or the group {speed.GROUP}", file=sys.stderr)
        return 2
    rounds = args.rounds or (1 if args.quick else 3)
    # The speed group's store-on rows are SQLite; PostgreSQL only in the other runs.
    ctx = Context(redis_url=args.redis_url, quick=args.quick, rounds=rounds, workdir=workdir,
                  postgres=speed.GROUP not in (args.scenario or []))
    report: dict[str, Any] = {"machine": machine(args.redis_url),
                              "run": {"quick": args.quick, "rounds": rounds,
                                      "code": code_version()},
                              "scenarios": {}}
    failed = False
    try:
        for name in selected:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            started = time.monotonic()
            try:
                ctx.flush()
                result = scenarios[name].run(ctx)
                if result.get("failed_phases"):  # a scenario that kept its other phases
                    failed = True
            except Exception as exc:  # one broken scenario must not lose the others
                traceback.print_exc()
                result = {"error": f"{type(exc).__name__}: {exc}"}
                failed = True
            finally:
                ctx.stop_workers()
            result["seconds"] = round(time.monotonic() - started, 1)
            result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
            report["scenarios"][name] = result
            print(f"bench: {name} done in {result['seconds']} s", file=sys.stderr, flush=True)
    finally:
        ctx.stop_workers()
        if failed:
            print(f"bench: worker logs kept in {ctx.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(ctx.workdir, ignore_errors=True)
    ratios = summary.ratio_rows(report["scenarios"], quick=args.quick)
    speed_rows = speed.table(report["scenarios"], quick=args.quick)
    cost_rows = cost.table(report["scenarios"], quick=args.quick)
    report["summary"] = {"ratios": ratios, "speed": speed_rows, "cost": cost_rows}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print("\n" + summary.render(ratios), file=sys.stderr)
    if speed_rows:
        print("\nissue 15's speed table\n" + speed.render(speed_rows), file=sys.stderr)
    if cost_rows:
        print("\nthe cost table (issue 27): against Celery as it ships and a hand-written lock "
              "peer\n" + cost.render(cost_rows), file=sys.stderr)
    return 1 if failed else 0


def _expand(names: list[str]) -> list[str]:
    """The scenario names with the ``speed`` group replaced by its scenarios, each once."""
    out: list[str] = []
    for name in names:
        for scenario in speed.SCENARIOS if name == speed.GROUP else (name,):
            if scenario not in out:
                out.append(scenario)
    return out


if __name__ == "__main__":
    sys.exit(main())
