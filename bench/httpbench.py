"""httpbench.py -- the pieces the Python HTTP benchmarks share: one keep-alive client
connection sending prepared requests back to back, the C load generator (bench/httpload.c),
percentiles, a process's CPU time, and redis-benchmark's unpipelined GET rate (the baseline
measured in the same run)."""

import multiprocessing as mp
import os
import re
import socket
import subprocess
import time
from pathlib import Path


def keepalive_worker(port, reqs, seconds, out_q):
    """One keep-alive connection to 127.0.0.1:port sending the raw requests in turn for
    `seconds`, reading each full response before the next; puts (count, errors,
    latencies in microseconds) on out_q. Non-200 answers count as errors."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat = []
    count = errors = 0
    buf = b""
    end = time.perf_counter() + seconds
    i = 0
    while True:
        t0 = time.perf_counter()
        if t0 >= end:
            break
        s.sendall(reqs[i % len(reqs)])
        i += 1
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("gateway closed the connection")
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        m = re.search(rb"(?i)content-length:\s*(\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(buf) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("gateway closed the connection")
            buf += chunk
        buf = buf[n:]
        if not head.startswith(b"HTTP/1.1 200"):
            errors += 1
        count += 1
        lat.append(int((time.perf_counter() - t0) * 1e6))
    s.close()
    out_q.put((count, errors, lat))


def run_processes(target, per_client_args, seconds):
    """One process per client running target(*args, seconds, queue) (e.g. a keepalive_worker
    wrapper); returns (requests/s, errors, requests, p50 ms, p99 ms, max ms)."""
    q = mp.Queue()
    procs = [mp.Process(target=target, args=(*a, seconds, q)) for a in per_client_args]
    for p in procs:
        p.start()
    results = [q.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    total = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    lat = sorted(x for r in results for x in r[2])
    return (total / seconds, errors, total, pct(lat, 50) / 1000, pct(lat, 99) / 1000,
            lat[-1] / 1000 if lat else 0)


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * p / 100))]


def redis_get_rate(port, n, clients=50):
    """redis-benchmark's unpipelined GET rate with `clients` connections (its default is 50)."""
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "get",
                          "-n", str(n), "-c", str(clients), "-P", "1", "-q"], capture_output=True, text=True,
                         timeout=300).stdout
    m = re.search(r"GET: ([\d.]+) requests per second", out.replace("\r", "\n"))
    return float(m.group(1)) if m else 0.0, out.strip().splitlines()[-1] if out.strip() else ""


def cpu_seconds(pid):
    """User + system CPU seconds a process has used so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def httpload_binary(build_dir):
    """build_dir/bench/httpload, or None when it is not built."""
    p = Path(build_dir) / "bench" / "httpload"
    return p if p.exists() else None


def run_httpload(build_dir, port, clients, threads, seconds, extra):
    """Run httpload (warm-up 0.5 s, then `seconds`) with the request options in `extra` (e.g.
    ["-m", "GET", "-U", paths_file]); returns (requests/s, errors, requests, p50 ms, p99 ms, max ms)."""
    cmd = [str(httpload_binary(build_dir)), "-p", str(port), "-c", str(clients), "-t", str(threads),
           "-d", str(seconds), "-w", "0.5", "--kv"] + list(extra)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"httpload failed: {out.stderr.strip()}")
    kv = dict(line.split("=", 1) for line in out.stdout.split() if "=" in line)
    return (float(kv["rps"]), int(kv["errors"]) + int(kv["conn_failures"]), int(kv["requests"]),
            int(kv["p50_us"]) / 1000, int(kv["p99_us"]) / 1000, int(kv["max_us"]) / 1000)
