#!/usr/bin/env bash
# Ingest through an external broker, and replica lag, with the platform split by role
# (docs/benchmarks.md, "Scale-out"): one `ingest` and one `api` process of BIN on PostgreSQL,
# NATS JetStream and Mosquitto (all on this machine), `mobility load mqtt` publishing through
# Mosquitto, a probe timing publish -> visible at the api process, and the api process's
# replica_lag_seconds. Each run gets its own database and bus prefix, dropped afterwards.
#   BIN=target/release/mobility RATE=50000 VEHICLES=5000 QOS=1 scripts/scale-out-bench.sh
set -u
BIN=${BIN:-target/release/mobility}
RATE=${RATE:-50000}
VEHICLES=${VEHICLES:-5000}
QOS=${QOS:-1}
BATCH=${BATCH:-1}
DURATION=${DURATION:-20}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
NATS=${NATS:-nats://127.0.0.1:4222}
MQTT=${MQTT:-mqtt://127.0.0.1:1883}
BROKER=${BROKER:-127.0.0.1:1883}

run=$(date +%s)$$
# OWN_BROKER=1: a Mosquitto of this run's own on BROKER_PORT, with the queue settings a platform
# broker needs (deploy/compose/mosquitto.conf): Debian's defaults let 20 QoS 1 messages be in
# flight to a subscriber and queue 1,000 more, then drop what comes (acknowledged to the
# vehicle, never delivered).
if [ "${OWN_BROKER:-0}" = 1 ]; then
  port=${BROKER_PORT:-18883}
  conf=$(mktemp)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 1000\nmax_queued_messages 1000000\nmax_queued_bytes 0\npersistence false\n' "$port" >"$conf"
  mosquitto -c "$conf" >/dev/null 2>&1 &
  broker_pid=$!
  sleep 0.5
  MQTT="mqtt://127.0.0.1:$port"
  BROKER="127.0.0.1:$port"
fi
db="bench_$run"
psql "$PG/postgres" -qc "create database $db" >/dev/null
ingest_dir=$(mktemp -d)
api_dir=$(mktemp -d)
common=(
  MOBILITY_DATABASE_URL="$PG/$db" MOBILITY_BUS_URL="$NATS" MOBILITY_BUS_PREFIX="bench$run"
  MOBILITY_MQTT_URL="$MQTT" MOBILITY_MQTT_SHARE_GROUP="bench-$run" MOBILITY_MQTT_SESSION_EXPIRY_S=0
  MOBILITY_ADMIN_TOKEN="bench-$run" MOBILITY_JWT_SECRET="bench-$run" MOBILITY_LOG=warn
  MOBILITY_BUS_STREAM_MAX_MIB=256
)
env "${common[@]}" MOBILITY_DATA_DIR="$ingest_dir" MOBILITY_HTTP_ADDR=127.0.0.1:18081 \
  MOBILITY_MQTT_CLIENT_ID="bench-ingest-$run" "$BIN" serve --roles ingest >"$ingest_dir/log" 2>&1 &
ingest=$!
env "${common[@]}" MOBILITY_DATA_DIR="$api_dir" MOBILITY_HTTP_ADDR=127.0.0.1:18082 \
  MOBILITY_MQTT_CLIENT_ID="bench-api-$run" "$BIN" serve --roles api >"$api_dir/log" 2>&1 &
api=$!
for port in 18081 18082; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done
"$BIN" load mqtt --token "bench-$run" --api http://127.0.0.1:18082 --metrics http://127.0.0.1:18081 \
  --watch http://127.0.0.1:18082 --broker "$BROKER" --vehicles "$VEHICLES" --rate "$RATE" \
  --qos "$QOS" --batch "$BATCH" --window 16 --duration-s "$DURATION"
echo "ingest process: $(ps -o rss=,time= -p $ingest) (RSS KiB, CPU time)"
echo "api process:    $(ps -o rss=,time= -p $api) (RSS KiB, CPU time)"
kill -TERM "$ingest" "$api"
wait "$ingest" "$api" 2>/dev/null
grep -iE "error|panic" "$ingest_dir/log" "$api_dir/log" | head -5
rm -rf "$ingest_dir" "$api_dir"
if [ -n "${broker_pid:-}" ]; then kill "$broker_pid"; wait "$broker_pid" 2>/dev/null; rm -f "$conf"; fi
psql "$PG/postgres" -qc "drop database $db" >/dev/null
# The run's streams on NATS (JetStream reserves each stream's most bytes: leave none behind),
# deleted over the NATS protocol itself.
nats_hostport=${NATS#nats://}
exec 3<>"/dev/tcp/${nats_hostport%:*}/${nats_hostport#*:}"
{
  printf 'CONNECT {"verbose":false}\r\n'
  for d in TELEMETRY VEHICLE FLEET DEMAND LIFECYCLE BOOKING PAYMENT ACCOUNT ADMIN DEAD_LETTER; do
    printf 'PUB $JS.API.STREAM.DELETE.BENCH%s_%s 0\r\n\r\n' "$run" "$d"
  done
  printf 'PING\r\n'
} >&3
timeout 2 grep -m1 -q PONG <&3
exec 3>&-
