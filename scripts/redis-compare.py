#!/usr/bin/env python3
"""Side by side: nearest-10-within-500-m queries on the same fleet, mobility vs Redis GEO.

Both get the same seeded vehicles (uniform over a Barcelona-sized box) and are queried over
loopback by a C load generator with the same concurrency: wrk against mobility's
GET /v1/vehicles/nearby, redis-benchmark against Redis GEOSEARCH ... BYRADIUS 500 m ASC COUNT 10.
redis-benchmark cannot vary coordinates, so both use one fixed point; mobility is also measured
with random points (scripts/nearby.lua). Needs: a running `mobility serve`, Redis, wrk,
redis-cli, redis-benchmark. Python standard library only.

Usage: scripts/redis-compare.py --api http://127.0.0.1:8080 --token "$(cat data/admin-token)" [--vehicles 50000]
"""
import argparse, http.client, json, os, random, re, subprocess, sys, time, urllib.parse
from concurrent.futures import ThreadPoolExecutor

LAT, LON = (41.321, 41.469), (2.071, 2.229)
POINT = (41.39, 2.15)


def positions(n, seed=42):
    rnd = random.Random(seed)
    return [(rnd.uniform(*LAT), rnd.uniform(*LON)) for _ in range(n)]


class Api:
    def __init__(self, base, token):
        u = urllib.parse.urlparse(base)
        self.host, self.port, self.token = u.hostname, u.port or 80, token

    def call(self, conn, method, path, body=None):
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        r = conn.getresponse()
        data = r.read()
        if r.status >= 300:
            sys.exit(f"{method} {path}: {r.status} {data[:200]!r}")
        return json.loads(data) if data else None

    def conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=60)


def load_mobility(api, n, city):
    c = api.conn()
    api.call(c, "PUT", f"/v1/admin/cities/{city}", {"name": "Redis comparison", "timezone": "UTC", "currency": "EUR"})

    def register(chunk):
        conn = api.conn()
        return [api.call(conn, "POST", "/v1/admin/vehicles", {"city": city, "type": "scooter"})["id"] for _ in range(chunk)]

    t = time.time()
    chunks = [n // 8 + (1 if i < n % 8 else 0) for i in range(8)]
    with ThreadPoolExecutor(8) as ex:
        ids = [i for part in ex.map(register, chunks) for i in part]
    reg_s = time.time() - t
    now = int(time.time() * 1000)
    reports = [{"vehicle_id": i, "ts": now, "lat": la, "lon": lo, "battery_pct": 80} for i, (la, lo) in zip(ids, positions(n))]
    t = time.time()
    for k in range(0, n, 10_000):
        res = api.call(c, "POST", "/v1/ingest/telemetry", reports[k:k + 10_000])
        assert res["applied"] == len(reports[k:k + 10_000]), res
    return reg_s, n / (time.time() - t)


def load_redis(n, port, key):
    subprocess.run(["redis-cli", "-p", str(port), "DEL", key], check=True, capture_output=True)
    lines = []
    for i, (la, lo) in enumerate(positions(n)):
        args = ["GEOADD", key, f"{lo:.7f}", f"{la:.7f}", f"v{i}"]
        lines.append(f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args))
    t = time.time()
    subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input="".join(lines).encode(), check=True, capture_output=True)
    return n / (time.time() - t)


def wrk(api_base, token, fixed, seconds):
    env = dict(os.environ, TOKEN=token)
    if fixed:
        env["FIXED"] = f"{POINT[0]},{POINT[1]}"
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nearby.lua")
    out = subprocess.run(["wrk", "-t1", "-c64", f"-d{seconds}s", "--latency", "-s", script, api_base],
                         env=env, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(\w+)", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    return rps, p99_ms


def redis_bench(port, key, requests):
    cmd = ["redis-benchmark", "-p", str(port), "-c", "64", "-n", str(requests), "-q", "--precision", "3",
           "GEOSEARCH", key, "FROMLONLAT", str(POINT[1]), str(POINT[0]), "BYRADIUS", "500", "m", "ASC", "COUNT", "10"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"([\d.]+) requests per second", out).group(1))
    p50 = re.search(r"p50=([\d.]+) msec", out)
    return rps, float(p50.group(1)) if p50 else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--api", default="http://127.0.0.1:8080")
    ap.add_argument("--token", required=True)
    ap.add_argument("--vehicles", type=int, default=50_000)
    ap.add_argument("--redis-port", type=int, default=6379)
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args()
    api = Api(a.api, a.token)
    city, key = "redis-compare", "mobility:compare"
    print(f"loading {a.vehicles} vehicles into both ...", flush=True)
    reg_s, ours_ingest = load_mobility(api, a.vehicles, city)
    redis_ingest = load_redis(a.vehicles, a.redis_port, key)
    ours_fixed = wrk(a.api, a.token, True, a.seconds)
    ours_random = wrk(a.api, a.token, False, a.seconds)
    redis_rps, redis_p50 = redis_bench(a.redis_port, key, int(max(ours_fixed[0], 50_000) * a.seconds))
    print(f"\n{a.vehicles} vehicles; nearest 10 within 500 m; 64 keep-alive connections over loopback")
    print(f"{'':44}{'queries/s':>12}{'latency':>22}")
    print(f"{'mobility HTTP, fixed point (wrk)':44}{ours_fixed[0]:>12.0f}{f'p99 {ours_fixed[1]:.2f} ms':>22}")
    print(f"{'mobility HTTP, random points (wrk)':44}{ours_random[0]:>12.0f}{f'p99 {ours_random[1]:.2f} ms':>22}")
    print(f"{'Redis GEOSEARCH, fixed point (redis-benchmark)':44}{redis_rps:>12.0f}{f'p50 {redis_p50:.2f} ms':>22}")
    print(f"\nloading positions: mobility HTTP batch ingest {ours_ingest:.0f}/s (durable, fsync'd); Redis GEOADD via --pipe {redis_ingest:.0f}/s")
    print(f"(registering {a.vehicles} vehicles through the admin API took {reg_s:.1f} s)")


if __name__ == "__main__":
    main()
