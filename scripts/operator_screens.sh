#!/usr/bin/env bash
# Sets a scene (jobs running, parked, queued and dead-lettered) on the Redis
# $PIPELINE_BROKER_URL names, runs each operator command on it, and saves the
# pictures docs/status.svg and docs/monitor.svg plus every command's output in
# $OUT (default: a temporary folder). The README's operator examples come from
# this script. The database it is given is flushed first: give it an empty one.
#
#   PIPELINE_BROKER_URL=redis://127.0.0.1:6379/14 bash scripts/operator_screens.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${PIPELINE_BROKER_URL:?set PIPELINE_BROKER_URL to an empty Redis database}"
PIPELINE="$PWD/.venv/bin/pipeline"
OUT="${OUT:-$(mktemp -d -t pipeline-screens-XXXX)}"
export PIPELINE_DATA_DIR="$OUT/data"
export PIPELINE_DATABASE_URL="sqlite:///$OUT/data/store.db"
mkdir -p "$PIPELINE_DATA_DIR"
started=()
stop() {
  for pid in "${started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT

run() {  # run NAME ARGS...: save `pipeline ARGS...` (and what it printed) as $OUT/NAME.txt
  local name=$1; shift
  { echo "\$ pipeline $*"; "$PIPELINE" "$@" 2>&1 || true; } | sed 's/[[:space:]]*$//' \
    > "$OUT/$name.txt"
}
submit() { "$PIPELINE" submit "$@"; }

.venv/bin/python - <<'EOF'
import os, redis
redis.Redis.from_url(os.environ["PIPELINE_BROKER_URL"]).flushdb()
EOF
"$PIPELINE" db upgrade > /dev/null
"$PIPELINE" worker -c 4 > "$OUT/worker.log" 2>&1 & started+=($!)
"$PIPELINE" recorder --report 0 > "$OUT/recorder.log" 2>&1 & started+=($!)
until grep -q " ready\." "$OUT/worker.log"; do sleep 0.2; done

submit tasks.demo.prepare broken '"ten"' --user hal > "$OUT/id-hal"  # sleep("ten") fails
sleep 9  # it fails its attempts (1 s, 2 s, 4 s apart) and is dead-lettered
submit tasks.demo.train bert 60 --user alice --model bert -p high > "$OUT/id-alice-bert"
sleep 0.5
submit tasks.demo.train gpt 60 --user bob --model gpt > /dev/null
submit tasks.demo.prepare invoices 60 --user erin --project billing > /dev/null
sleep 0.5
submit tasks.demo.train bert 20 --user carol --model bert -p critical > "$OUT/id-carol-bert"
submit tasks.demo.evaluate bert 5 --user dan --shared-model bert > /dev/null
submit tasks.demo.prepare logs 5 --user alice -p low > "$OUT/id-alice-logs"
submit tasks.demo.prepare tickets 60 --user frank --project billing > /dev/null
sleep 0.5
submit tasks.demo.prepare reviews 60 --user gina -p low > "$OUT/id-gina"
sleep 3

"$PIPELINE" status --svg docs/status.svg > /dev/null
"$PIPELINE" monitor --once --svg docs/monitor.svg > /dev/null
run status status
run monitor monitor --once
run jobs jobs -n 6
run show-parked show "$(cat "$OUT/id-carol-bert")"
run show-running show "$(cat "$OUT/id-alice-bert")"
run show-unknown show 0b7c-no-such-job
run locks locks list
run dlq dlq list
run flush-dry flush -p low --dry-run
run reprioritize reprioritize "$(cat "$OUT/id-alice-logs")" high
run cancel cancel "$(cat "$OUT/id-gina")" --reason "not needed today"
run release locks release model:bert --yes --reason "training hung"
run stats stats --since 10m
run import-dry import docs/pending-requests.example.json --dry-run
run import import docs/pending-requests.example.json
run import-again import docs/pending-requests.example.json
run submit-bad submit tasks.demo.train bert -p urgent
run submit-args submit tasks.demo.train bert --kwargs '{"color": "red"}'
echo "outputs in $OUT"
