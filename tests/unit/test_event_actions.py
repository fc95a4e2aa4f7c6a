"""The actions that operator and maintenance events name are declared once, in full.

Metrics export 0 for each declared action, so an action emitted somewhere but not
declared would appear only once it happened: this test reads every place that
writes such an event (Python and Lua) and compares.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.messages.events import MAINTENANCE_ACTIONS, OPERATOR_ACTIONS

PACKAGE = Path(__file__).resolve().parents[2] / "pipeline"
PYTHON_ACTION = re.compile(r"""["']action["']\s*:\s*f?["']([a-z_{}.]+)["']""")
LUA_ACTION = re.compile(r"""action\s*=\s*'([a-z_]+)'""")


def emitted_actions() -> set[str]:
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if "importer" in path.name:   # an import plan's rows, not events
            continue
        found.update(PYTHON_ACTION.findall(path.read_text()))
    for path in PACKAGE.rglob("*.lua"):
        found.update(LUA_ACTION.findall(path.read_text()))
    # The load gate writes gate_{pause|resume}; dead letters write the action given.
    found.discard("gate_{transition.action}")
    return found | {"gate_pause", "gate_resume"}


def test_every_action_written_to_an_event_is_declared() -> None:
    declared = set(OPERATOR_ACTIONS) | set(MAINTENANCE_ACTIONS)
    found = emitted_actions()
    assert found <= declared, f"actions written but not declared: {sorted(found - declared)}"
    deadletter_actions = re.findall(r'_record_operator\([^,]+, "([a-z_]+)"',
                                    (PACKAGE / "actions" / "deadletters.py").read_text())
    assert set(deadletter_actions) == {"dlq_requeue", "dlq_purge"}
    assert set(OPERATOR_ACTIONS) & set(MAINTENANCE_ACTIONS) == set()
