"""The package's import graph: packages by concept, imports pointing downward only.

Every package of ``pipeline/`` (and each of the few modules at its top) has a
layer. A module may import modules of lower layers, and modules of its own
package; never a higher layer (lazy imports inside functions count too), and
never in a circle. A new package must be given its layer here, and
``docs/architecture.md`` draws the same picture.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pipeline"

#: Package (or top-level module) -> layer. Lower layers know nothing of higher ones.
LAYERS: dict[str, int] = {
    # the error tree
    "pipeline.errors": 0,
    # every setting, every Redis key name, priorities: declared once
    "pipeline.conf": 1, "pipeline.keys": 1, "pipeline.priority": 1,
    # the lock engine: claims, tickets, the Lua scripts, the parked message (Redis only)
    "pipeline.locks": 2,
    # what crosses a process boundary: the job header, the job events
    "pipeline.messages": 3,
    # the job store (SQL; no Celery task, no lock engine)
    "pipeline.store": 4,
    # processes: the per-process services handle, running jobs, embedded Redis, launch
    "pipeline.runtime": 5,
    # the guarded broker transport: fetch, renewals, set-aside, rescue
    "pipeline.broker": 6,
    # the job's path: publish, start, park, attempts, finish; the Celery hooks
    "pipeline.job": 7,
    # what operators do; the load gate and worker agents; jobs agents run over HTTP
    "pipeline.actions": 8, "pipeline.admission": 8, "pipeline.remote": 8,
    # read-only views: metrics, inspection
    "pipeline.observe": 9,
    # wiring an app: its install and default configuration
    "pipeline.app": 10,
    # the faces
    "pipeline.api": 11, "pipeline.cli": 12,
    # the public API
    "pipeline": 13, "pipeline.__main__": 13,
}
#: At most this many modules at the top of ``pipeline/`` (the public API, errors, settings,
#: and where Redis is: ``redisurl``, which every layer that connects reads).
TOP_LEVEL_MAX = 7


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "migrations" in parts:
            continue
        name = ".".join(parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imported_names(path: Path) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.module, [a.name for a in node.names]))
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    out: set[str] = set()
    for module, names in _imported_names(path):
        if not module.startswith("pipeline"):
            continue
        subs = [f"{module}.{name}" for name in names]
        named = [s for s in subs if s in modules]
        out.update(named if named and len(named) == len(subs) else [module, *named])
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {t for t in _imports(path, modules) if t in modules and t != name}
            for name, path in modules.items()}


def _unit(module: str) -> str:
    """The package (or top-level module) *module* belongs to."""
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len,
               default=None)
    assert best is not None, f"{module} belongs to no package: add it to LAYERS in {__file__}"
    return best


def test_every_import_points_to_its_own_package_or_a_lower_layer() -> None:
    upward = [f"{source} ({_unit(source)}, {LAYERS[_unit(source)]}) imports {target} "
              f"({_unit(target)}, {LAYERS[_unit(target)]})"
              for source, targets in _graph().items() for target in targets
              if _unit(target) != _unit(source)
              and LAYERS[_unit(target)] >= LAYERS[_unit(source)]]
    assert upward == []


def test_no_import_circles() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    assert circles == []


def test_the_top_of_the_package_holds_only_the_public_api_errors_and_settings() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= TOP_LEVEL_MAX, top


def _third_party(prefix: str) -> list[str]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if module.startswith(prefix):
            found += [f"{module}: {name}" for name, _ in _imported_names(path)]
    return found


def test_the_lock_engine_knows_redis_not_celery_tasks_nor_sql() -> None:
    found = [line for line in _third_party("pipeline.locks")
             if line.split(": ")[1].startswith(("sqlalchemy", "celery.app.task", "celery.worker"))]
    assert found == []


def test_the_store_knows_no_celery_task_no_lock_engine_and_no_screen() -> None:
    found = [line for line in _third_party("pipeline.store")
             if line.split(": ")[1].startswith((
                 "celery.app", "celery.worker", "celery.canvas", "click", "fastapi", "rich",
                 "pipeline.locks", "pipeline.runtime"))]
    assert found == []


def test_the_library_never_imports_the_deployable_app() -> None:
    found = [line for line in _third_party("pipeline")
             if line.split(": ")[1] == "tasks" or line.split(": ")[1].startswith("tasks.")]
    assert found == []


def test_the_architecture_page_draws_every_package() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    missing = [name for name in LAYERS if f"`{name}`" not in page]
    assert missing == [], f"docs/architecture.md does not show {missing}"
    for name, layer in LAYERS.items():
        assert re.search(rf"\| {layer} \| [^\n]*`{re.escape(name)}`", page), (name, layer)
