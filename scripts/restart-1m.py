#!/usr/bin/env python3
"""Restart time with a large fleet (docs/benchmarks.md, "Restart with 1,000,000 vehicles").

Starts `mobility serve` on a fresh data directory (SQLite), registers VEHICLES vehicles through
the admin API, reports a position for each over HTTP, then restarts it twice and times each
start until `/readyz` answers and a nearby search finds vehicles:
  - after SIGTERM (the final snapshot holds every position: nothing to replay);
  - after a second round of positions and `kill -9` (the snapshot plus the write-ahead log).

    python3 scripts/restart-1m.py target/release/mobility [VEHICLES] [ROUNDS]

With PREPARED=DIR, the data directory made once is kept in DIR (made on the first run, reused
after): each round then starts from a copy of it, so builds can be compared on the same data.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.path.realpath(sys.argv[1] if len(sys.argv) > 1 else "target/release/mobility")
VEHICLES = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
PORT = 18090
BASE = f"http://127.0.0.1:{PORT}"


def call(method, path, token, body=None, timeout=120):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read() or b"null")


def start(data_dir, log):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOBILITY_")}
    env.update(
        MOBILITY_DATA_DIR=data_dir,
        MOBILITY_HTTP_ADDR=f"127.0.0.1:{PORT}",
        MOBILITY_MQTT_ADDR="127.0.0.1:0",
        MOBILITY_LOG="info",
        # Snapshots only at shutdown: the kill -9 restart then replays every report of the
        # second round from the log.
        MOBILITY_LIVE_SNAPSHOT_INTERVAL_S="0",
        MOBILITY_HISTORY_RETENTION_DAYS="0",
    )
    return subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log)


def ready(proc, token, t0):
    """Milliseconds from t0 until /readyz answers, and until nearby finds vehicles."""
    ready_ms = None
    while True:
        if proc.poll() is not None:
            raise SystemExit("the server exited")
        try:
            if ready_ms is None:
                with urllib.request.urlopen(BASE + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        ready_ms = (time.monotonic() - t0) * 1000
            if ready_ms is not None:
                _, body = call("GET", "/v1/vehicles/nearby?lat=41.39&lon=2.17&radius_m=2000&limit=5&state=any", token)
                if body.get("vehicles"):
                    return ready_ms, (time.monotonic() - t0) * 1000
        except OSError:
            pass
        time.sleep(0.002)


def positions(ids, round_):
    now = int(time.time() * 1000)
    rng = random.Random(round_)
    for i in range(0, len(ids), 10_000):
        batch = [
            {"vehicle_id": v, "ts": now + round_, "lat": 41.32 + rng.random() * 0.14,
             "lon": 2.07 + rng.random() * 0.16, "battery_pct": 80}
            for v in ids[i:i + 10_000]
        ]
        yield batch


def startup_lines(log_path):
    """The last start's phase lines: registry, bus, live state."""
    keys = ("loaded the vehicle registry", "event bus open", "recovered live fleet state")
    with open(log_path) as f:
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", l).strip() for l in f]
    last = {}
    for l in lines:
        for k in keys:
            if k in l:
                last[k] = re.sub(r"^\S+\s+INFO\s+\S+\s+", "", l)
    return " | ".join(last.get(k, "?") for k in keys)


def prepare(d):
    """Registers the fleet and its positions in data directory `d`, then stops cleanly."""
    log = open(os.path.join(d, "log"), "a")
    proc = start(d, log)
    token = None
    for _ in range(500):
        try:
            token = open(os.path.join(d, "admin-token")).read().strip()
            urllib.request.urlopen(BASE + "/readyz", timeout=1)
            break
        except OSError:
            time.sleep(0.02)
    call("PUT", "/v1/admin/cities/barcelona", token,
         {"name": "Barcelona", "timezone": "Europe/Madrid", "currency": "EUR"})
    t = time.monotonic()
    ids = []
    while len(ids) < VEHICLES:
        n = min(1000, VEHICLES - len(ids))
        _, body = call("POST", "/v1/admin/vehicles/batch", token,
                       {"vehicles": [{"city": "barcelona", "type": "scooter"}] * n})
        ids.extend(v["id"] for v in body["vehicles"])
    print(f"registered {len(ids)} vehicles in {time.monotonic() - t:.0f} s", flush=True)
    t = time.monotonic()
    for batch in positions(ids, 1):
        call("POST", "/v1/ingest/telemetry", token, batch)
    print(f"reported {len(ids)} positions in {time.monotonic() - t:.0f} s", flush=True)
    with open(os.path.join(d, "ids.json"), "w") as f:
        json.dump(ids, f)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)


def main():
    prepared = os.environ.get("PREPARED")
    if prepared and not os.path.exists(os.path.join(prepared, "ids.json")):
        os.makedirs(prepared, exist_ok=True)
        prepare(prepared)
    d = tempfile.mkdtemp()
    if prepared:
        subprocess.run(["cp", "-a", prepared + "/.", d], check=True)
    else:
        prepare(d)
    token = open(os.path.join(d, "admin-token")).read().strip()
    ids = json.load(open(os.path.join(d, "ids.json")))
    log_path = os.path.join(d, "log")
    log = open(log_path, "a")
    proc = None
    for r in range(ROUNDS):
        # A clean stop came before: the final snapshot holds everything.
        t0 = time.monotonic()
        proc = start(d, log)
        ready_ms, nearby_ms = ready(proc, token, t0)
        print(f"round {r + 1}, after SIGTERM: /readyz after {ready_ms:.0f} ms, nearby finds vehicles after {nearby_ms:.0f} ms")
        print(f"    {startup_lines(log_path)}", flush=True)
        # New positions for every vehicle, then kill -9: the log holds them.
        for batch in positions(ids, r + 2):
            call("POST", "/v1/ingest/telemetry", token, batch)
        proc.kill()
        proc.wait()
        t0 = time.monotonic()
        proc = start(d, log)
        ready_ms, nearby_ms = ready(proc, token, t0)
        print(f"round {r + 1}, after kill -9: /readyz after {ready_ms:.0f} ms, nearby finds vehicles after {nearby_ms:.0f} ms")
        print(f"    {startup_lines(log_path)}", flush=True)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    subprocess.run(["rm", "-rf", d])


main()
