#!/usr/bin/env bash
# Two builds side by side on one machine (docs/benchmarks.md, "The re-lay"): MQTT ingest,
# HTTP nearby and full trips (unlock latency), alternating BASE and NEW each round, each run on
# a fresh data directory and the load from the same binary (NEW's). BASE and NEW are release
# binaries, e.g. one built from an earlier commit in a git worktree.
set -u
BASE=${BASE:?set BASE to the earlier release binary}
NEW=${NEW:?set NEW to the release binary to compare}
ROUNDS=${ROUNDS:-3}
LOAD=$NEW
start() { # binary data-dir
  MOBILITY_DATA_DIR=$2 MOBILITY_HTTP_ADDR=127.0.0.1:18080 MOBILITY_MQTT_ADDR=127.0.0.1:18884 \
    MOBILITY_LOG=warn MOBILITY_RATE_LIMIT_PER_S=100000 MOBILITY_SIGN_IN_PER_MIN=100000 \
    "$1" serve >/dev/null 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.1; done
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null; }
round() { # name binary
  local d; d=$(mktemp -d)
  start "$2" "$d"
  local ingest nearby trips
  ingest=$("$LOAD" load mqtt --token "$(cat "$d/admin-token")" --api http://127.0.0.1:18080 \
    --broker 127.0.0.1:18884 --duration-s 8 --vehicles 200 --qos 1 --window 8 2>&1 \
    | grep -oE "applied by the platform: [0-9]+ \([0-9]+/s" | grep -oE "[0-9]+/s")
  nearby=$(TOKEN=$(cat "$d/admin-token") wrk -t1 -c64 -d8s --latency -s "$(dirname "$0")/nearby.lua" \
    http://127.0.0.1:18080 2>&1 | grep -E "Requests/sec| 99%" | tr -s ' ' | tr '\n' ' ')
  trips=$("$LOAD" load trips --token "$(cat "$d/admin-token")" --api http://127.0.0.1:18080 \
    --broker 127.0.0.1:18884 --riders 8 --duration-s 8 2>&1 | grep -iE "trips/s|unlock" | tr -s ' ' | tr '\n' ' ')
  stop
  rm -rf "$d"
  echo "$1 :: ingest $ingest :: nearby $nearby :: trips $trips"
}
for _ in $(seq 1 "$ROUNDS"); do
  round base "$BASE"
  round new "$NEW"
done
