#!/usr/bin/env bash
# Measures start-up: exec of `mobility serve` on a fresh data directory (SQLite created and
# migrated) until /healthz answers 200, then SIGTERM and the exit status.
# Usage: scripts/startup-time.sh [path/to/mobility] [runs]   (build with: cargo build --release)
set -euo pipefail
BIN=$(realpath "${1:-target/release/mobility}")
RUNS=${2:-5}
for i in $(seq 1 "$RUNS"); do
  dir=$(mktemp -d)
  start=$(date +%s%N)
  (cd "$dir" && MOBILITY_HTTP_ADDR=127.0.0.1:0 MOBILITY_MQTT_ADDR=127.0.0.1:0 exec "$BIN" serve 2>"$dir/log") &
  pid=$!
  addr=""
  until [ -n "$addr" ]; do
    addr=$(grep -o 'listening on http://[0-9.:]*' "$dir/log" 2>/dev/null | head -1 | sed 's|listening on ||') || true
    sleep 0.002
  done
  until curl -sf -o /dev/null "$addr/healthz"; do sleep 0.002; done
  end=$(date +%s%N)
  kill -TERM "$pid"
  rc=0; wait "$pid" || rc=$?
  echo "run $i: healthy after $(( (end - start) / 1000000 )) ms; exit status after SIGTERM: $rc"
  rm -rf "$dir"
done
