"""The Lua scripts and ``pipeline/keys.py`` name every key the same way."""

from __future__ import annotations

from importlib import resources

import redis

from pipeline.keys import FIXED, PER_ID, Keys, lua_table

LIB = resources.files("pipeline.locks").joinpath("lua")


def _lua_files() -> dict[str, str]:
    return {entry.name: entry.read_text(encoding="utf-8") for entry in LIB.iterdir()
            if entry.name.endswith(".lua")}


def test_every_key_the_scripts_build_is_the_one_keys_py_names(lock_redis: redis.Redis) -> None:
    keys = Keys("some-prefix")
    ident = 'model:b"ert\\é'
    per_id = {"writers": "wkey", "readers": "rkey", "line": "lkey", "holder": "hkey",
              "parked": "pkey"}
    body = "return {" + ", ".join(
        [f"{fn}(ARGV[2])" for fn in per_id.values()] + [f"KEY.{name}" for name in FIXED]) + "}"
    source = (lua_table() + LIB.joinpath("lib.lua").read_text(encoding="utf-8")
              + "\nbegin(ARGV)\n" + body)
    built = [b.decode() for b in lock_redis.eval(source, 0, keys.base, ident)]
    expected = [getattr(keys, name)(ident) for name in per_id]
    expected += [getattr(keys, name) for name in FIXED]
    assert built == expected


def test_every_key_name_of_keys_py_has_a_method() -> None:
    keys = Keys()
    for name in PER_ID:
        assert callable(getattr(keys, name)), name
    for name in FIXED:
        assert isinstance(getattr(keys, name), str), name


def test_no_script_spells_out_a_key_name() -> None:
    spelled = []
    literals = {f"'{part}" for before, _ in PER_ID.values() for part in (before,)}
    literals |= {f"'{suffix}'" for suffix in FIXED.values()}
    for name, text in _lua_files().items():
        for number, line in enumerate(text.splitlines(), start=1):
            code = line.split("--", 1)[0]
            spelled += [f"{name}:{number}: {literal}" for literal in literals if literal in code]
            if "B .. '" in code:
                spelled.append(f"{name}:{number}: a key built from a literal")
    assert spelled == []
