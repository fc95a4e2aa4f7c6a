"""The table of ``pipeline_*`` settings, generated from ``pipeline.conf.SETTINGS``.

The documentation site's settings reference (``docs/reference/settings.md``) is
rendered from it each time the site is built (``docs/_ext/pipeline_reference.py``),
so it cannot drift from the declarations. Usage::

    python scripts/settings_table.py           # print the Markdown table
"""

from __future__ import annotations

import sys

from pipeline.conf import SETTINGS, Setting


def _type_name(setting: Setting) -> str:
    types = setting.type if isinstance(setting.type, tuple) else (setting.type,)
    return " or ".join("None" if t is type(None) else t.__name__ for t in types)


def _default(setting: Setting) -> str:
    value = setting.default
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:
        return f"{value:,.0f}"
    return str(value)


def render() -> str:
    """The Markdown table of every setting."""
    lines = [
        "| setting | environment variable | type | default | what it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for setting in SETTINGS:
        doc = setting.doc.replace("|", "\\|")
        lines.append(f"| `{setting.name}` | `{setting.name.upper()}` | {_type_name(setting)} "
                     f"| `{_default(setting)}` | {doc} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Print the table; returns the exit code."""
    del argv
    print(render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
