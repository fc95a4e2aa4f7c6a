"""The Lua scripts, as scripts (EVALSHA) and as one Redis function library (FCALL).

Each script is the key table (:func:`pipeline.keys.lua_table`), the shared
files (``lib.lua``; ``take.lua``, taking a job's claims or parking it, shared by
a worker's start and an agent's claim; ``pool.lua``, an agent pool's leases)
and its own file. Run as a script, all of it is executed on every
call. On Redis 7 and newer the same code is also loaded once as a function
library (:func:`library`): the shared part is then set up once, and a call runs
only ``begin(ARGV)`` and the script's own body. :mod:`pipeline.locks.fastcall`
uses the library where the server has functions, the scripts elsewhere (6.2).
"""

from __future__ import annotations

from functools import cache
from hashlib import sha1
from importlib import resources
from typing import Any

from pipeline.keys import lua_table

LIB = "lib.lua"
#: Files every script starts with (after the key table), in order.
SHARED = (LIB, "take.lua", "pool.lua")
NAMES = ("acquire", "release", "renew", "sweep", "cancel", "reprioritize", "queued",
         "force_release", "claim", "lease")


def _text(file: str) -> str:
    return resources.files("pipeline.locks").joinpath("lua", file).read_text(encoding="utf-8")


def _body(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"no lock script {name!r}; scripts are {', '.join(NAMES)}")
    return _text(f"{name}.lua")


@cache
def source(name: str) -> str:
    """The full text of script *name*: the key table, the shared library, then the script."""
    return f"{_shared()}begin(ARGV)\n{_body(name)}"


def _shared() -> str:
    return lua_table() + "\n" + "".join(_text(file) + "\n" for file in SHARED)


@cache
def lib_source() -> str:
    """The key table and ``lib.lua``: what a script of another package that parks jobs
    (the broker's fetch) puts in front of its own code; it calls ``begin`` itself."""
    return lua_table() + "\n" + _text(LIB) + "\n"


@cache
def library() -> tuple[str, dict[str, str]]:
    """The function library (``FUNCTION LOAD``) and each script's function name.

    The library's name carries a digest of its code, so workers of two releases
    can share one Redis, each calling its own functions.
    """
    shared = _shared()
    tag = "pipeline_" + sha1("".join([shared, *map(_body, NAMES)]).encode()).hexdigest()[:12]
    functions = "".join(
        f"redis.register_function('{tag}_{name}', function(KEYS, ARGV)\nbegin(ARGV)\n"
        f"{_body(name)}\nend)\n" for name in NAMES)
    return f"#!lua name={tag}\n{shared}{functions}", {name: f"{tag}_{name}" for name in NAMES}


def register_all(client: Any) -> dict[str, Any]:
    """redis-py ``Script`` objects for every script (EVALSHA, loaded on first use)."""
    return {name: client.register_script(source(name)) for name in NAMES}
