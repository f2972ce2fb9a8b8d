#!/usr/bin/env bash
# MQTT ingest, two builds alternating on one machine (docs/benchmarks.md, "MQTT ingest with the
# bus on"). BASE and NEW are two release binaries, e.g. one built from an earlier commit in a
# git worktree: BASE=/var/tmp/base-target/release/mobility NEW=target/release/mobility
set -u
BASE=${BASE:?set BASE to the earlier release binary}
NEW=${NEW:?set NEW to the release binary to compare}
ROUNDS=${ROUNDS:-3}
run() { # name binary load-args...
  local name=$1 bin=$2; shift 2
  local d; d=$(mktemp -d)
  MOBILITY_DATA_DIR=$d MOBILITY_HTTP_ADDR=127.0.0.1:18080 MOBILITY_MQTT_ADDR=127.0.0.1:18884 \
    MOBILITY_LOG=warn "$bin" serve >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.1; done
  local out; out=$("$bin" load mqtt --token "$(cat "$d/admin-token")" --api http://127.0.0.1:18080 \
    --broker 127.0.0.1:18884 --duration-s 8 "$@" 2>&1 | grep -E "applied|PUBACK" | tr '\n' ' ')
  kill -TERM "$pid"; wait "$pid" 2>/dev/null
  rm -rf "$d"
  echo "$name $* :: $out"
}
for _ in $(seq 1 "$ROUNDS"); do
  run base "$BASE" --vehicles 200 --qos 1 --window 8
  run new "$NEW" --vehicles 200 --qos 1 --window 8
  run base "$BASE" --vehicles 2000 --qos 0 --window 16
  run new "$NEW" --vehicles 2000 --qos 0 --window 16
done
