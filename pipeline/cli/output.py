"""What the operator commands share: ``--json``, ``--by``, ``--yes``, times and colours."""

from __future__ import annotations

import getpass
import io
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click
from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

#: Colours of the load levels (the earlier queue's GREEN/YELLOW/RED/CRITICAL).
LEVEL_STYLES = {"LOW": "green", "MODERATE": "yellow", "HIGH": "red",
                "CRITICAL": "bold white on red"}
PRIORITY_STYLES = {"critical": "bold red", "high": "yellow", "normal": "", "low": "dim"}
STATE_STYLES = {"COMPLETED": "green", "FAILED": "red", "DEAD_LETTERED": "bold red",
                "EXPIRED": "red", "CANCELLED": "dim", "BLOCKED": "yellow", "RUNNING": "cyan",
                "QUEUED": ""}


def json_option(func: F) -> F:
    """``--json``: print JSON for scripts instead of tables."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON (for scripts) instead of text.")(func)


def json_lines_option(func: F) -> F:
    """``--json`` of a long-running command: its status lines as JSON objects, one a line."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the command's own status lines (ready, stopped...) as "
                             "JSON objects, one a line, on stdout.")(func)


def yes_option(func: F) -> F:
    """``--yes``: do not ask for confirmation."""
    return click.option("--yes", "-y", is_flag=True,
                        help="Do not ask for confirmation (scripts).")(func)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def by_option(func: F) -> F:
    """``--by``: who acts, for the audit log (default: the login name)."""
    return click.option("--by", default=_user, show_default="your login name",
                        help="Who acts, as recorded in the audit log.")(func)


def print_json(data: Any) -> None:
    """*data* as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def say(as_json: bool, event: str, text: str, *, err: bool = False, **fields: Any) -> None:
    """A status line of a long-running command: *text*, or with ``--json`` one JSON object
    (``event``, ``message`` and *fields*) on a line of stdout."""
    if as_json:
        click.echo(json.dumps({"event": event, "message": text, **fields}, default=str,
                              ensure_ascii=False))
    else:
        click.echo(text, err=err)


def console() -> Console:
    """A console on stdout (plain text when it is not a terminal)."""
    return Console(highlight=False)


def confirm(question: str) -> None:
    """Ask on stderr; abort (exit 1) unless the answer is yes."""
    click.confirm(question, abort=True, err=True)


def clock(moment: float | datetime | str | None, *, ms: bool = False) -> str:
    """A time as local ``YYYY-MM-DD HH:MM:SS`` (``.mmm`` with *ms*; ``-`` when unknown)."""
    if moment is None or moment == "":
        return "-"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment)
    text = moment.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")
    return text[:-3] if ms else text[:-7]


def span(seconds: float | None) -> str:
    """A duration in its largest unit: ``850ms``, ``12s``, ``4m05s``, ``2h10m``, ``3d4h``."""
    if seconds is None:
        return "-"
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600}h"


def styled(text: str, style: str) -> str:
    """*text* in rich markup with *style* (unchanged when the style is empty)."""
    return f"[{style}]{text}[/]" if style else text


def level_style(text: str, level: str) -> str:
    """*text* in the colour of the load level *level*."""
    return styled(text, LEVEL_STYLES.get(level, ""))


def level_text(level: str) -> str:
    """A load level in its colour."""
    return level_style(level, level)


def priority_text(label: str) -> str:
    """A priority label in its colour."""
    return styled(label or "-", PRIORITY_STYLES.get(label, ""))


def show(renderable: Any, svg: str | None = None, *, title: str = "pipeline") -> None:
    """Print *renderable*; with *svg*, also save it as an 80-column SVG picture there."""
    console().print(renderable)
    if svg:
        recorder = Console(record=True, width=80, file=io.StringIO(), force_terminal=True,
                           color_system="truecolor", highlight=False)
        recorder.print(renderable)
        recorder.save_svg(svg, title=title)
