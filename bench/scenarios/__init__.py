"""The benchmark scenarios: one module each, found by :func:`discover`.

A scenario is a module of this package with a module-level ``SCENARIO``::

    SCENARIO = Scenario("throughput", "drain rate of a pre-filled queue", run, order=10)

where ``run(ctx)`` gets a :class:`bench.harness.Context` (the database is
flushed and no worker runs when it is called), starts its workers with
``ctx.worker(...)`` and returns a JSON-able dict. Adding a scenario is adding
a module; nothing else needs to change.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.harness import Context


@dataclass(frozen=True)
class Scenario:
    """One benchmark: its name, a one-line summary, and the function that runs it."""

    name: str
    summary: str
    run: Callable[[Context], dict[str, Any]]
    order: int = 100


def discover() -> dict[str, Scenario]:
    """Every scenario of this package, in run order (``order``, then name)."""
    found: dict[str, Scenario] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        scenario = getattr(module, "SCENARIO", None)
        if isinstance(scenario, Scenario):
            found[scenario.name] = scenario
    return dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))
