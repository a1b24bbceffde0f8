#!/usr/bin/python3
"""bench_check.py -- POST /v1/check (the employer check: share code + date of birth -> passport with
verification statement) requests per second through the gateway with keep-alive, latency p50/p99,
beside redis-benchmark's unpipelined GET rate on the same Redis, in the same run.

    CAREPASS_BUILD_DIR=build /usr/bin/python3 bench/bench_check.py [--seconds 5] [--clients 50]

Starts its own system (Redis + every service + gateway) on free loopback ports in a temporary
directory, commits --records records for each of --workers workers, makes one share code per
worker (`carepass worker-token` + POST /v1/share-codes), then runs the load generator: --clients
persistent HTTP/1.1 connections sending checks back to back (no pipelining), reading each full
response before the next, cycling over the workers' codes. The generator is bench/httpload.c
(`--generator c`, the default when it is built: epoll, one thread, so the client takes little of the
2 cores) or the original Python one (`--generator python`: one process per connection).
--runs N repeats the load and the redis-benchmark measurement N times on the same system;
--perf FILE records `perf record -g` of the gateway during the first run (BENCH_PERF_ARGS replaces
"-g", e.g. "--call-graph dwarf,16384 -F 1500"); --redis-stats prints Redis's commands per check. Every check is a
real one: the Redis round trips to open the code, read the worker's index and record the view for
the worker, the register entries (signatures and inclusion proofs cached after first sight), the
JSON passport.

Target (issue 4): check rate >= half of Redis's own unpipelined GET rate, p99 < 10 ms. The GET rate
is measured right before and right after each load run, with as many connections as the checks
(--clients, default 50: redis-benchmark's own default), and the ratio uses their mean.
The machine has 2 cores shared by the gateway, Redis and the generator: compare the ratio.
"""

import argparse
import json
import os
import re
import subprocess
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

DOB = "1984-05-17"


def worker(port, bodies, seconds, out_q):
    """One keep-alive connection; returns (count, errors, latencies in µs)."""
    reqs = [(f"POST /v1/check HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
             f"Content-Length: {len(b)}\r\n\r\n").encode() + b for b in bodies]
    keepalive_worker(port, reqs, seconds, out_q)


def run_python(port, bodies, args):
    return run_processes(worker, [(port, bodies[i % len(bodies):] + bodies[:i % len(bodies)])
                                  for i in range(args.clients)], args.seconds)


def run_c(port, bodies, args, tmpdir):
    bf = Path(tmpdir) / "bodies.txt"
    bf.write_bytes(b"\n".join(bodies) + b"\n")
    return run_httpload(args.build_dir, port, args.clients, args.gen_threads, args.seconds,
                        ["-m", "POST", "-u", "/v1/check", "-H", "Content-Type: application/json", "-b", str(bf)])


def post(url, body, token=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    rq = urllib.request.Request(url, data=json.dumps(body).encode(), headers=h)
    return json.loads(urllib.request.urlopen(rq, timeout=60).read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=50, help="keep-alive connections (and redis-benchmark -c)")
    ap.add_argument("--workers", type=int, default=20)
    ap.add_argument("--records", type=int, default=4)
    ap.add_argument("--threads", type=int, default=4, help="CAREPASS_GATEWAY_THREADS (the gateway default)")
    ap.add_argument("--redis-n", type=int, default=100000)
    ap.add_argument("--generator", choices=("c", "python"), default=None,
                    help="load generator (default: c when bench/httpload is built, else python)")
    ap.add_argument("--gen-threads", type=int, default=1, help="httpload threads")
    ap.add_argument("--runs", type=int, default=1, help="load + redis-benchmark rounds on one system")
    ap.add_argument("--perf", default=None, help="perf record -g the gateway during run 1 into this file")
    ap.add_argument("--kv", action="store_true", help="also print one key=value line per run")
    ap.add_argument("--redis-stats", action="store_true",
                    help="print Redis's commands per check and their time (INFO commandstats) for each run")
    ap.add_argument("--build-dir", default=os.environ.get("CAREPASS_BUILD_DIR", str(HERE.parent / "build")))
    args = ap.parse_args()
    args.build_dir = str(Path(args.build_dir).resolve())  # the harness runs binaries from other directories
    os.environ["CAREPASS_BUILD_DIR"] = args.build_dir
    gen = args.generator or ("c" if httpload_binary(args.build_dir) else "python")

    with tempfile.TemporaryDirectory(prefix="bench-check-") as d:
        s = CarepassSystem(d, build_dir=args.build_dir, services=("bus", "verify", "signer", "notify", "gateway", "intake"),
                           extra_env={"CAREPASS_LOG_LEVEL": "warn", "CAREPASS_GATEWAY_THREADS": args.threads,
                                      "CAREPASS_GATEWAY_PER_IP_LIMIT": 0})
        try:
            quals = ["RF-FIRE", "RF-SAFEG", "RF-MH", "RF-BLS", "RF-MED"]
            bodies = []
            tok_p = s.provider_token()
            evs = [event(f"bench-{w}-{r}", ni_number=f"AB{200000 + w:06d}C",
                         qualification_code=quals[r % len(quals)], completion_date="2026-01-0%d" % (1 + r % 9),
                         assessor_id="ASR-0001")
                   for w in range(args.workers) for r in range(args.records)]
            for b in range(0, len(evs), 200):
                rq = urllib.request.Request(f"{s.gateway_url}/v1/events?ack=committed",
                                            data=json.dumps(evs[b:b + 200]).encode(),
                                            headers={"Authorization": f"Bearer {tok_p}",
                                                     "Content-Type": "application/json"})
                urllib.request.urlopen(rq, timeout=60).read()
            for w in range(args.workers):
                tok = s.run_cli(["worker-token", f"AB{200000 + w:06d}C"], check=True).stdout.strip()
                code = post(f"{s.gateway_url}/v1/share-codes", {"date_of_birth": DOB}, tok)["code"]
                bodies.append(json.dumps({"share_code": code, "date_of_birth": DOB, "employer": "bench"}).encode())
            first = post(f"{s.gateway_url}/v1/check", json.loads(bodies[0]))
            assert len(first["records"]) == args.records and first["verification"]["authentic"], first
            print(f"{args.workers} workers x {args.records} records; {args.clients} keep-alive clients ({gen} generator), "
                  f"{args.seconds:.0f} s; gateway threads {args.threads}; response {len(json.dumps(first))} bytes")

            for run in range(args.runs):
                rget0, _ = redis_get_rate(s.redis_port, args.redis_n, args.clients)  # before; the ratio uses the mean
                perf = None
                if args.perf and run == 0:
                    perf = subprocess.Popen(["perf", "record"] + os.environ.get("BENCH_PERF_ARGS", "-g").split() + [ "-o", args.perf, "-p",
                                             str(s.pid("gateway"))], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
                    time.sleep(0.5)
                if args.redis_stats:
                    with s.redis() as r:
                        r.cmd("CONFIG", "RESETSTAT")
                cpu0 = {n: cpu_seconds(p) for n, p in (("gateway", s.pid("gateway")), ("redis", s.redis_proc.pid))}
                rps, errors, total, p50, p99, mx = (run_c(s.gateway_port, bodies, args, d) if gen == "c"
                                                    else run_python(s.gateway_port, bodies, args))
                cpu = {n: cpu_seconds(p) - cpu0[n] for n, p in (("gateway", s.pid("gateway")), ("redis", s.redis_proc.pid))}
                if perf is not None:
                    perf.send_signal(2)
                    perf.wait(timeout=60)
                print(f"[run {run + 1}] gateway POST /v1/check ({gen} generator): {rps:,.0f} requests/s "
                      f"({total} in {args.seconds:.1f} s, {errors} non-200); latency p50 {p50:.2f} ms, "
                      f"p99 {p99:.2f} ms, max {mx:.2f} ms")
                if args.redis_stats and total:
                    with s.redis() as r:
                        info = r.cmd("INFO", "commandstats").decode()
                    for m in re.finditer(r"cmdstat_(\w+):calls=(\d+),usec=(\d+)", info):
                        print(f"[run {run + 1}] redis {m.group(1).upper():8s} {int(m.group(2)) / total:5.2f} per check, "
                              f"{int(m.group(3)) / total:5.2f} us per check")
                if total:
                    print(f"[run {run + 1}] CPU per check: gateway {cpu['gateway'] / total * 1e6:.1f} us, "
                          f"redis {cpu['redis'] / total * 1e6:.1f} us")
                rget1, line = redis_get_rate(s.redis_port, args.redis_n, args.clients)
                rget = (rget0 + rget1) / 2
                print(f"[run {run + 1}] redis-benchmark GET -P 1 (same Redis, right before and after): {rget0:,.0f} and "
                      f"{rget1:,.0f} requests/s, mean {rget:,.0f}; load average {os.getloadavg()[0]:.1f}")
                if rget:
                    ratio = rps / rget
                    print(f"[run {run + 1}] ratio check / redis GET: {ratio:.2f} "
                          f"(target >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'}); "
                          f"p99 {p99:.2f} ms (target < 10 ms: {'met' if p99 < 10 else 'NOT met'})")
                    if args.kv:
                        print(f"kv run={run + 1} check_rps={rps:.0f} p50_ms={p50:.2f} p99_ms={p99:.2f} "
                              f"redis_get_rps={rget:.0f} ratio={ratio:.3f} errors={errors}")
        finally:
            s.stop()


if __name__ == "__main__":
    main()
