"""The package's import graph: no circles, imports pointing downward only.

Every module of ``pipeline/`` has a layer; a module may import modules of its
own layer or below, never above (lazy imports inside functions count too).
A new module must be given its layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pipeline"

#: Module name prefix -> layer (the longest matching prefix wins).
LAYERS: dict[str, int] = {
    # what imports nothing of the project but errors
    "pipeline.errors": 0, "pipeline.events": 0, "pipeline.keys": 0, "pipeline.running": 0,
    "pipeline.locks.fastcall": 0, "pipeline.locks": 0,
    "pipeline.priority": 1, "pipeline.conf": 1, "pipeline.checks": 5,
    "pipeline.timewindow": 1,
    # what a job needs, its header, its stored message, its retry policy
    "pipeline.resources": 2, "pipeline.header": 3, "pipeline.parking": 2, "pipeline.retries": 2,
    # the lock engine, the store (Redis and SQL; no Celery task, no screen)
    "pipeline.locks.base": 3, "pipeline.locks.scripts": 3, "pipeline.locks.redis": 4,
    "pipeline.heartbeat": 4, "pipeline.emitter": 1, "pipeline.store": 4,
    # the per-process handle
    "pipeline.engine": 5,
    # operator actions and reads, workflows, the result-backend state
    "pipeline.blocked_state": 5, "pipeline.deadletters": 6, "pipeline.workflows": 6,
    "pipeline.control": 6, "pipeline.fencing": 6, "pipeline.maintenance": 6,
    "pipeline.canvas": 3, "pipeline.revoked": 6, "pipeline.outage": 1,
    # load, the load gate, worker agents and allocation (read by the CLI and the API)
    "pipeline.admission": 6,
    # read-only views of the running system (CLI, monitor, API)
    "pipeline.inspection": 7,
    # the worker's side of the broker: kombu's transport and Celery's consumer, guarded
    "pipeline.broker": 6,
    # the job's path, one phase a module
    "pipeline.publishing": 7, "pipeline.starting": 7, "pipeline.finishing": 7,
    "pipeline.deliveries": 7,
    "pipeline.attempts": 8,
    # the Celery hooks, and what publishes through them
    "pipeline.task": 9, "pipeline.request": 9, "pipeline.batch": 10,
    # the worker's default time limits of pipeline tasks
    "pipeline.limits": 10,
    # importing a pending-requests file (validated, then published as a batch)
    "pipeline.importer": 11,
    # wiring an app, its default config, the package's public API
    "pipeline.appsetup": 11, "pipeline.celery_config": 11, "pipeline": 12,
    # processes and people
    "pipeline.runtime": 1, "pipeline.cli": 13, "pipeline.__main__": 14,
}
#: The store knows neither Celery tasks nor the lock engine.
STORE_MUST_NOT_IMPORT = ("pipeline.engine", "pipeline.locks", "pipeline.task",
                         "pipeline.starting", "pipeline.finishing", "pipeline.publishing")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "migrations" in parts:
            continue
        name = ".".join(parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("pipeline"))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if not node.module.startswith("pipeline"):
                continue
            subs = [f"{node.module}.{a.name}" for a in node.names]
            named = [s for s in subs if s in modules]
            out.update(named if len(named) == len(subs) else [node.module, *named])
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {t for t in _imports(path, modules) if t in modules and t != name}
            for name, path in modules.items()}


def _layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len,
               default=None)
    assert best is not None, f"{module} has no layer: add it to LAYERS in {__file__}"
    return LAYERS[best]


def test_every_import_points_to_the_same_layer_or_below() -> None:
    upward = [f"{source} ({_layer(source)}) imports {target} ({_layer(target)})"
              for source, targets in _graph().items() for target in targets
              if _layer(target) > _layer(source)]
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


def test_the_store_imports_neither_the_lock_engine_nor_the_task_path() -> None:
    found = [f"{source} imports {target}" for source, targets in _graph().items()
             if source.startswith("pipeline.store") for target in targets
             if target.startswith(STORE_MUST_NOT_IMPORT)]
    assert found == []


def test_the_library_never_imports_the_deployable_app() -> None:
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names
                      if n == "tasks" or n.startswith("tasks.")]
    assert found == []
