#!/usr/bin/python3
"""bench_gateway.py -- GET /log/tile/... requests per second through the gateway with keep-alive,
beside redis-benchmark's unpipelined GET rate on the same Redis, in the same run.

    CAREPASS_BUILD_DIR=build /usr/bin/python3 bench/bench_gateway.py [--seconds 5] [--clients 50]

Starts its own system (Redis + bus, verify, signer, notify, intake, gateway) on free loopback
ports in a temporary directory, commits a few hundred events so the register has full tiles,
then runs the load generator: --clients persistent HTTP/1.1 connections sending requests back
to back (no pipelining), reading each full response before the next, cycling over every tile
path of the register (level-0 hash tiles, entry bundles, the partial tile). The generator is
bench/httpload.c when it is built (one epoll thread), else the Python one of httpbench.py (one
process per connection). It prints requests/s, latency percentiles, the gateway's CPU per
request, and redis-benchmark's GET requests/s with as many connections, and the ratio of the two.
The machine has 2 cores shared by the gateway, Redis and the generator: compare the ratio,
not absolute numbers.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
os.environ.setdefault("CAREPASS_SOURCE_DIR", str(HERE.parent))

from harness import CarepassSystem, event  # noqa: E402
from httpbench import cpu_seconds, httpload_binary, keepalive_worker, redis_get_rate, run_httpload, run_processes  # noqa: E402


def worker(port, paths, seconds, out_q):
    """One keep-alive connection; returns (count, errors, latencies in µs)."""
    reqs = [f"GET {p} HTTP/1.1\r\nHost: bench\r\n\r\n".encode() for p in paths]
    keepalive_worker(port, reqs, seconds, out_q)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=50, help="keep-alive connections (and redis-benchmark -c)")
    ap.add_argument("--threads", type=int, default=4, help="CAREPASS_GATEWAY_THREADS")
    ap.add_argument("--generator", choices=("c", "python"), default=None,
                    help="load generator (default: c when bench/httpload is built, else python)")
    ap.add_argument("--build-dir", default=os.environ.get("CAREPASS_BUILD_DIR", str(HERE.parent / "build")))
    ap.add_argument("--events", type=int, default=600)
    ap.add_argument("--redis-n", type=int, default=100000)
    args = ap.parse_args()
    args.build_dir = str(Path(args.build_dir).resolve())  # the harness runs binaries from other directories
    os.environ["CAREPASS_BUILD_DIR"] = args.build_dir
    gen = args.generator or ("c" if httpload_binary(args.build_dir) else "python")

    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as d:
        s = CarepassSystem(d, build_dir=args.build_dir,
                           services=("bus", "verify", "signer", "notify", "gateway", "intake"),
                           extra_env={"CAREPASS_LOG_LEVEL": "warn", "CAREPASS_GATEWAY_THREADS": args.threads,
                                      "CAREPASS_GATEWAY_PER_IP_LIMIT": 0})
        try:
            tok = s.provider_token()
            for b in range(0, args.events, 200):
                evs = [event(f"bench-{i}", ni_number=f"AB{100000 + i:06d}C") for i in range(b, min(b + 200, args.events))]
                rq = urllib.request.Request(f"{s.gateway_url}/v1/events?ack=committed", data=json.dumps(evs).encode(),
                                            headers={"Authorization": f"Bearer {tok}",
                                                     "Content-Type": "application/json"})
                urllib.request.urlopen(rq, timeout=60).read()
            note = urllib.request.urlopen(f"{s.gateway_url}/log/checkpoint").read().decode()
            size = int(note.split("\n")[1])
            paths = []
            for n in range(size // 256):
                paths += [f"/log/tile/0/{n:03d}", f"/log/tile/entries/{n:03d}"]
            if size % 256:
                paths += [f"/log/tile/0/{size // 256:03d}.p/{size % 256}"]
            print(f"register size {size}; {len(paths)} tile paths; {args.clients} keep-alive clients "
                  f"({gen} generator), {args.seconds:.0f} s; gateway threads {args.threads}")

            gw_pid = s.pid("gateway")
            cpu0 = cpu_seconds(gw_pid)
            t0 = time.perf_counter()
            if gen == "c":
                pf = Path(d) / "paths.txt"
                pf.write_text("\n".join(paths) + "\n")
                rps, errors, total, p50, p99, mx = run_httpload(args.build_dir, s.gateway_port, args.clients, 1,
                                                                args.seconds, ["-m", "GET", "-U", str(pf)])
            else:
                rps, errors, total, p50, p99, mx = run_processes(worker, [(s.gateway_port, paths)] * args.clients,
                                                                 args.seconds)
            elapsed = time.perf_counter() - t0
            cpu = cpu_seconds(gw_pid) - cpu0
            print(f"gateway GET /log/tile/...: {rps:,.0f} requests/s ({total} in {elapsed:.1f} s, "
                  f"{errors} non-200); latency p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {mx:.2f} ms; "
                  f"gateway CPU {cpu / max(total, 1) * 1e6:.1f} us per request")
            rget, line = redis_get_rate(s.redis_port, args.redis_n, args.clients)
            print(f"redis-benchmark GET -P 1 (same Redis, same run): {rget:,.0f} requests/s  [{line}]")
            if rget:
                print(f"ratio gateway tile GET / redis GET: {rps / rget:.2f}")
        finally:
            s.stop()


if __name__ == "__main__":
    main()
