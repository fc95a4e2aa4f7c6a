"""Loading the Lua scripts: the key table, the shared ``lib.lua``, then the script."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from pipeline.keys import lua_table

LIB = "lib.lua"
NAMES = ("acquire", "release", "renew", "sweep", "cancel", "reprioritize", "queued",
         "force_release")


@cache
def source(name: str) -> str:
    """The full text of script *name*: the key table, the shared library, then the script."""
    if name not in NAMES:
        raise ValueError(f"no lock script {name!r}; scripts are {', '.join(NAMES)}")
    folder = resources.files("pipeline.locks").joinpath("lua")
    lib = folder.joinpath(LIB).read_text(encoding="utf-8")
    body = folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return f"{lua_table()}\n{lib}\n{body}"


def register_all(client: Any) -> dict[str, Any]:
    """redis-py ``Script`` objects for every script (EVALSHA, loaded on first use)."""
    return {name: client.register_script(source(name)) for name in NAMES}
