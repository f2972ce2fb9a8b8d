#!/usr/bin/env bash
# Seconds from exec of `mobility demo` until the platform knows the positions of 95 % of the fleet.
set -u
BIN=${1:?binary}; N=${2:-5000}; PORT=${3:-18090}
start=$(date +%s.%N)
MOBILITY_HTTP_ADDR=127.0.0.1:$PORT MOBILITY_MQTT_ADDR=127.0.0.1:$((PORT+1)) "$BIN" demo --vehicles "$N" >out.txt 2>err.txt &
pid=$!
while true; do
  if [ -f data/admin-token ]; then
    unknown=$(curl -s -H "authorization: Bearer $(cat data/admin-token)" "http://127.0.0.1:$PORT/v1/fleet/stats?city=barcelona" | python3 -c 'import sys,json; d=json.load(sys.stdin); print(d["total"] and d["battery"]["unknown"] if d.get("total") else -1)' 2>/dev/null || echo -1)
    if [ "$unknown" != "-1" ] && [ "$unknown" -le $((N/20)) ]; then break; fi
  fi
  sleep 0.1
done
end=$(date +%s.%N)
echo "living city (95 % of $N vehicles reporting) after $(python3 -c "print(round($end-$start,2))") s"
kill -INT $pid; wait $pid
