"""Reference pages generated from the code when the site is built, so they cannot drift.

Directives (used in MyST pages as ```` ```{pipeline-settings} ````):

``pipeline-settings``
    The table of every ``pipeline_*`` setting, from ``pipeline.conf.SETTINGS``
    (rendered by ``scripts/settings_table.py``).
``pipeline-openapi``
    Every route of the REST API, with its parameters, body and answers, and
    every schema, from the OpenAPI schema of ``pipeline.api.app.create_app``.

Both produce Markdown and hand it to MyST, which parses it as part of the page.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("get", "post", "put", "patch", "delete")


def settings_table() -> ModuleType:
    """``scripts/settings_table.py`` (not a package: loaded by path)."""
    spec = importlib.util.spec_from_file_location("settings_table",
                                                  ROOT / "scripts" / "settings_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class MarkdownDirective(SphinxDirective):
    """A directive whose output is Markdown, parsed by MyST into the page."""

    has_content = False

    def markdown(self) -> str:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        container = nodes.container()
        lines = self.markdown().splitlines()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), 0,
                                container, match_titles=True)
        return list(container.children)


class SettingsDirective(MarkdownDirective):
    """The settings table."""

    def markdown(self) -> str:
        return str(settings_table().render())


def openapi_schema() -> dict[str, Any]:
    """The REST API's OpenAPI schema, as ``/openapi.json`` serves it."""
    from pipeline.api.app import create_app
    from pipeline.api.auth import TokenSet
    from pipeline.observe.metrics import Metrics
    from tasks.app import app

    api = create_app(app, tokens=TokenSet(()), metrics=Metrics(app, worker_refresh=0))
    return dict(api.openapi())


def _cell(text: Any) -> str:
    return " ".join(str(text or "").split()).replace("|", "\\|")


def type_of(schema: dict[str, Any]) -> str:
    """A short type name of a JSON schema (``list of string``, ``JobIn``, ``int or null``)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(type_of(s) for s in schema[key])
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {type_of(schema['additionalProperties'])}"
    return str(kind)


def _operation(path: str, method: str, op: dict[str, Any]) -> list[str]:
    out = [f"### `{method.upper()} {path}`", ""]
    if op.get("summary"):
        out += [f"**{op['summary']}**", ""]
    if op.get("description"):
        out += [op["description"].strip(), ""]
    params = op.get("parameters", [])
    if params:
        out += ["| parameter | in | type | required | description |",
                "| --- | --- | --- | --- | --- |"]
        for p in params:
            out.append(f"| `{p['name']}` | {p['in']} | {type_of(p.get('schema', {}))} | "
                       f"{'yes' if p.get('required') else 'no'} | "
                       f"{_cell(p.get('description') or p.get('schema', {}).get('description'))} |")
        out.append("")
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        out += [f"Body (JSON): {type_of(body.get('schema', {}))}", ""]
    out += ["| answer | meaning |", "| --- | --- |"]
    for code, answer in sorted(op.get("responses", {}).items()):
        content = answer.get("content", {}).get("application/json", {})
        returns = f": {type_of(content['schema'])}" if content.get("schema") else ""
        out.append(f"| {code} | {_cell(answer.get('description'))}{returns} |")
    out.append("")
    return out


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    out = [f"### {name}", ""]
    if schema.get("description"):
        out += [schema["description"].strip(), ""]
    properties = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", []))
        out += ["| field | type | required | description |", "| --- | --- | --- | --- |"]
        for field, spec in properties.items():
            default = f" (default `{spec['default']}`)" if "default" in spec else ""
            out.append(f"| `{field}` | {type_of(spec)} | {'yes' if field in required else 'no'}"
                       f" | {_cell(spec.get('description'))}{default} |")
        out.append("")
    return out


class OpenApiDirective(MarkdownDirective):
    """Every route and schema of the REST API."""

    def markdown(self) -> str:
        schema = openapi_schema()
        out: list[str] = []
        by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        for path, item in schema["paths"].items():
            for method in METHODS:
                if method in item:
                    tag = (item[method].get("tags") or ["other"])[0]
                    by_tag.setdefault(tag, []).append((path, method, item[method]))
        for tag, operations in by_tag.items():
            out += [f"## {tag.capitalize()}", ""]
            for path, method, op in operations:
                out += _operation(path, method, op)
        out += ["## Schemas", ""]
        for name, spec in sorted(schema.get("components", {}).get("schemas", {}).items()):
            out += _schema(name, spec)
        return "\n".join(out)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("pipeline-settings", SettingsDirective)
    app.add_directive("pipeline-openapi", OpenApiDirective)
    return {"version": "1", "parallel_read_safe": True}
