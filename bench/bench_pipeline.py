#!/usr/bin/python3
"""bench_pipeline.py -- end-to-end pipeline throughput (intake -> verify -> signer -> register)
beside the raw Ed25519 signing rate of the same machine, measured in the same run.

It starts a whole carepass system on loopback with tests/integration/harness.py
(Redis + bus, intake, verify, signer, notify on free ports, in a temporary
directory), then:

  1. runs `bench_register --sign-only` (raw crypto_sign_detached rate, one core);
  2. submits N events (default 20000) with ack=accepted in batches of 500 over C
     concurrent CurveZMQ DEALER connections, and times (a) until every batch is
     acknowledged and (b) until the register holds all of them;
  3. submits N more (new event ids, new workers) with ack=committed and times
     until every batch is answered (every event signed and fsynced);
  4. runs the raw signing figure again; prints figures and ratios;
  5. stops everything and removes the temporary directory.

Events are fictional: distinct valid-format NI numbers made up here, qualification
codes from data/catalogue.json that PRV-0001 is approved for on the completion date.
Loopback only; every wait is bounded (--max-seconds overall, --batch-timeout per batch).

Run (after building):
  /usr/bin/python3 bench/bench_pipeline.py --build-dir build [--events 20000] [--connections 4]
"""

import argparse
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[1]
# Prefixes for the made-up NI numbers: valid in form (first letter not D F I Q U V,
# second not D F I O Q U V, not BG GB KN NK NT TN ZZ). Never real people: the bench
# runs on a throw-away Redis and register that are deleted at the end.
NI_PREFIXES = ("JT", "CE", "HJ", "AB", "WP", "LM", "RS", "EH")
NI_SUFFIXES = "ABCD"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default=os.environ.get("CAREPASS_BUILD_DIR",
                                                         str(SOURCE_DIR / "build")),
                   help="CMake build directory with the services, the CLI and bench_register")
    p.add_argument("--events", type=int, default=20000, help="events per phase (default 20000)")
    p.add_argument("--batch", type=int, default=500, help="events per SubmitRequest (default 500)")
    p.add_argument("--connections", type=int, default=4,
                   help="concurrent DEALER connections (default 4)")
    p.add_argument("--inflight", type=int, default=2,
                   help="requests outstanding per connection (default 2)")
    p.add_argument("--phases", default="accepted,committed",
                   help="which ack levels to run, in order (default accepted,committed)")
    p.add_argument("--sign-seconds", type=float, default=2.0,
                   help="seconds for each raw signing measurement (default 2)")
    p.add_argument("--batch-timeout", type=float, default=180.0,
                   help="seconds to wait for one reply (default 180)")
    p.add_argument("--max-seconds", type=float, default=900.0,
                   help="bound on the whole load phase (default 900)")
    p.add_argument("--log-level", default="warn",
                   help="CAREPASS_LOG_LEVEL for the services (default warn)")
    p.add_argument("--dir", default=None,
                   help="parent directory for the temporary system (default $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    a = p.parse_args()
    for name in ("events", "batch", "connections", "inflight"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be at least 1")
    if a.events > 900000:
        p.error("--events must be at most 900000 (NI numbers per prefix run out)")
    a.phases = [x.strip() for x in a.phases.split(",") if x.strip()]
    if not a.phases or any(x not in ("accepted", "committed") for x in a.phases):
        p.error("--phases takes accepted and/or committed")
    return a


ARGS = parse_args()
os.environ["CAREPASS_BUILD_DIR"] = str(Path(ARGS.build_dir).resolve())
os.environ.setdefault("CAREPASS_SOURCE_DIR", str(SOURCE_DIR))
sys.path.insert(0, str(SOURCE_DIR / "tests" / "integration"))

import zmq  # noqa: E402  (python3-zmq)

import harness  # noqa: E402  (sets up the protobuf path from CAREPASS_BUILD_DIR)
from harness import CarepassSystem  # noqa: E402


# ---- workload -------------------------------------------------------------

def approved_codes(provider, on_date):
    """Submittable catalogue codes `provider` is approved for on `on_date` (YYYY-MM-DD)."""
    cat = json.loads((SOURCE_DIR / "data" / "catalogue.json").read_text())
    reg = json.loads((SOURCE_DIR / "data" / "providers.json").read_text())
    prov = next(p for p in reg["providers"] if p["id"] == provider)

    def approved(code):
        for ap in prov.get("approvals", []):
            pat = ap["code"]
            hit = code.startswith(pat[:-1]) if pat.endswith("*") else code == pat
            if hit and ap["from"] <= on_date and (ap["to"] == "" or on_date <= ap["to"]):
                return True
        return False

    # derived awards are never submitted; Care Certificate standards are left out
    # so that no worker collects all 16 and triggers a derived award mid-run
    codes = [q["code"] for q in cat["qualifications"]
             if not q.get("derived") and not q["code"].startswith("CC-STD")
             and approved(q["code"])]
    if not codes:
        raise SystemExit(f"{provider} is approved for no submittable code on {on_date}")
    return codes


def fake_ni(i):
    """Distinct made-up NI number number i (valid format)."""
    prefix = NI_PREFIXES[i % len(NI_PREFIXES)]
    return f"{prefix}{(i // len(NI_PREFIXES)) % 1000000:06d}{NI_SUFFIXES[i % 4]}"


def build_requests(pb, tag, first, n, batch, ack, codes, completion):
    """Serialized SubmitRequests of `batch` events each: (request_id, bytes, count)."""
    ack_level = {"accepted": pb.ACK_LEVEL_ACCEPTED, "committed": pb.ACK_LEVEL_COMMITTED}[ack]
    out = []
    for start in range(0, n, batch):
        req = pb.SubmitRequest()
        req.ack = ack_level
        req.request_id = f"{tag}-{start // batch}"
        for i in range(first + start, first + min(start + batch, n)):
            ev = req.events.add()
            ev.provider_event_id = f"bench-{tag}-{i:07d}"
            ev.ni_number = fake_ni(i)
            ev.qualification_code = codes[i % len(codes)]
            ev.completion_date = completion
            ev.assessor_id = f"ASR-0001-{i % 1000:03d}"
            ev.evidence_hash = hashlib.sha256(ev.provider_event_id.encode()).digest()
        out.append((req.request_id, req.SerializeToString(), len(req.events)))
    return out


# ---- load -----------------------------------------------------------------

class Tally:
    """Outcome counts over every reply (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.outcomes = {}        # outcome name -> count
        self.reasons = {}         # reason code -> count (rejections)
        self.errors = []          # request-level errors / timeouts
        self.latencies = []       # seconds per request, send to reply

    def add(self, pb, rep, latency):
        with self.lock:
            self.latencies.append(latency)
            if rep.error_code:
                self.errors.append(f"{rep.request_id}: {rep.error_code} {rep.error_message}")
            for r in rep.replies:
                name = pb.Outcome.Name(r.outcome)
                self.outcomes[name] = self.outcomes.get(name, 0) + 1
                if r.reason_code:
                    self.reasons[r.reason_code] = self.reasons.get(r.reason_code, 0) + 1

    def error(self, msg):
        with self.lock:
            self.errors.append(msg)


def connection_worker(system, requests, tally, inflight, batch_timeout, deadline):
    """Send `requests` over one DEALER, keeping up to `inflight` outstanding; read every reply."""
    pb = system.pb
    sock = system.dealer(harness.DEFAULT_PROVIDER)
    pending = {}                          # request id -> send time
    todo = list(requests)
    try:
        while todo or pending:
            while todo and len(pending) < inflight:
                rid, data, _ = todo.pop(0)
                sock.send(data)
                pending[rid] = time.monotonic()
            now = time.monotonic()
            oldest = min(pending.values())
            wait = min(oldest + batch_timeout, deadline) - now
            if wait <= 0 or not sock.poll(int(wait * 1000)):
                tally.error(f"timed out with {len(pending)} requests unanswered")
                return
            rep = pb.SubmitReply()
            rep.ParseFromString(sock.recv())
            sent = pending.pop(rep.request_id, None)
            if sent is None:
                tally.error(f"reply to unknown request {rep.request_id!r}")
                continue
            tally.add(pb, rep, time.monotonic() - sent)
    finally:
        sock.close(linger=0)


def register_size(system):
    """Size in the register's checkpoint (second line of the note), 0 if none yet."""
    try:
        lines = (system.register_dir / "checkpoint").read_text().splitlines()
        return int(lines[1])
    except (OSError, IndexError, ValueError):
        return 0


def cpu_seconds(system):
    """{process: user+system CPU seconds so far} for every service and redis-server
    (from /proc/<pid>/stat; where the pipeline's CPU goes)."""
    tick = os.sysconf("SC_CLK_TCK")
    procs = dict(system.procs)
    if system.redis_proc is not None:
        procs["redis"] = system.redis_proc
    out = {}
    for name, proc in procs.items():
        try:
            with open(f"/proc/{proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / tick   # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    out["bench (this script)"] = sum(os.times()[:2])
    return out


def run_phase(system, ack, requests, connections, inflight, batch_timeout, max_seconds):
    """Submit every request over `connections` DEALERs; returns a dict of figures."""
    n_events = sum(r[2] for r in requests)
    cpu0 = cpu_seconds(system)
    shares = [requests[i::connections] for i in range(connections)]
    tally = Tally()
    size0 = register_size(system)
    t0 = time.monotonic()
    deadline = t0 + max_seconds
    threads = [threading.Thread(target=connection_worker,
                                args=(system, share, tally, inflight, batch_timeout, deadline),
                                daemon=True) for share in shares if share]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()) + 5)
    t_acked = time.monotonic() - t0
    # then until the register holds every event (same for both ack levels)
    while register_size(system) - size0 < n_events and time.monotonic() < deadline:
        time.sleep(0.01)
    t_register = time.monotonic() - t0
    in_register = register_size(system) - size0
    cpu1 = cpu_seconds(system)
    cpu = {k: round(cpu1[k] - cpu0.get(k, 0.0), 2) for k in cpu1}
    lat = sorted(tally.latencies)
    return {
        "ack": ack,
        "events": n_events,
        "requests": len(requests),
        "acked_s": t_acked,
        "acked_per_s": n_events / t_acked if t_acked > 0 else 0.0,
        "register_s": t_register,
        "in_register": in_register,
        "register_per_s": in_register / t_register if t_register > 0 else 0.0,
        "outcomes": dict(tally.outcomes),
        "reasons": dict(tally.reasons),
        "errors": tally.errors[:5],
        "n_errors": len(tally.errors),
        "latency_p50_s": lat[len(lat) // 2] if lat else None,
        "latency_max_s": lat[-1] if lat else None,
        "cpu_s": cpu,
    }


def raw_sign_rate(build_dir, seconds):
    """Raw crypto_sign_detached rate from bench_register --sign-only (signatures/s)."""
    exe = Path(build_dir) / "bench" / "bench_register"
    cp = subprocess.run([str(exe), "--sign-only", "--kv", "--sign-seconds", str(seconds)],
                        capture_output=True, text=True, timeout=seconds * 5 + 30)
    if cp.returncode != 0:
        raise SystemExit(f"{exe} failed ({cp.returncode}):\n{cp.stderr}")
    kv = dict(line.split("=", 1) for line in cp.stdout.splitlines() if "=" in line)
    return float(kv["sign_per_s"])


# ---- main -----------------------------------------------------------------

def main():
    a = ARGS
    build_dir = Path(a.build_dir).resolve()
    today = datetime.date.today()
    completion = (today - datetime.timedelta(days=30)).isoformat()
    codes = approved_codes(harness.DEFAULT_PROVIDER, completion)
    pb = harness.event_pb2

    print(f"bench_pipeline: {a.events} events per phase, batches of {a.batch}, "
          f"{a.connections} connections x {a.inflight} in flight, {len(codes)} qualification codes, "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", flush=True)
    # build every request before the clock starts: the generator's own cost stays out
    work = {}
    for k, ack in enumerate(a.phases):
        work[ack] = build_requests(pb, ack[:3], k * a.events, a.events, a.batch, ack, codes,
                                   completion)
    warm = build_requests(pb, "warm", len(a.phases) * a.events, min(a.batch, 100), a.batch,
                          "committed", codes, completion)

    sign_before = raw_sign_rate(build_dir, a.sign_seconds)
    print(f"  raw Ed25519 signing (before): {sign_before:,.0f} sig/s", flush=True)

    tmp = tempfile.mkdtemp(prefix="cp-bench-pipeline-", dir=a.dir)
    results = []
    system = None
    ok = False
    try:
        system = CarepassSystem(tmp, build_dir=build_dir,
                                extra_env={"CAREPASS_LOG_LEVEL": a.log_level,
                                           "CAREPASS_ACK_TIMEOUT_MS": str(
                                               int(min(a.batch_timeout, 600) * 1000))})
        # warm-up: CURVE handshakes, first register batch, Redis scripts loaded
        w = run_phase(system, "committed", warm, 1, 1, a.batch_timeout, 60)
        if w["n_errors"] or w["outcomes"].get("OUTCOME_COMMITTED", 0) != w["events"]:
            raise SystemExit(f"warm-up failed: {w}")
        for ack in a.phases:
            r = run_phase(system, ack, work[ack], a.connections, a.inflight, a.batch_timeout,
                          a.max_seconds)
            results.append(r)
            print(f"  phase ack={ack}: {r['events']} events answered in {r['acked_s']:.2f} s, "
                  f"in the register after {r['register_s']:.2f} s; outcomes {r['outcomes']}",
                  flush=True)
            if r["reasons"]:
                print(f"    rejections: {r['reasons']}", flush=True)
            for e in r["errors"]:
                print(f"    error: {e}", flush=True)
        ok = all(r["n_errors"] == 0 and r["in_register"] >= r["events"] for r in results)
    finally:
        if system is not None:
            system.stop(show_logs=not ok)
        if a.keep:
            print(f"  kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    sign_after = raw_sign_rate(build_dir, a.sign_seconds)
    sign = (sign_before + sign_after) / 2
    print(f"  raw Ed25519 signing (after):  {sign_after:,.0f} sig/s")
    print()
    print(f"  {'measure':<52} {'events/s':>10} {'/ raw sign':>10}")
    print(f"  {'raw crypto_sign_detached, one core (mean before/after)':<52} {sign:>10,.0f} "
          f"{1.0:>10.3f}")
    for r in results:
        if r["ack"] == "accepted":
            print(f"  {'ack=accepted: all batches acknowledged':<52} {r['acked_per_s']:>10,.0f} "
                  f"{r['acked_per_s'] / sign:>10.3f}")
            print(f"  {'ack=accepted: all events in the register':<52} "
                  f"{r['register_per_s']:>10,.0f} {r['register_per_s'] / sign:>10.3f}")
        else:
            print(f"  {'ack=committed: all batches answered committed':<52} "
                  f"{r['acked_per_s']:>10,.0f} {r['acked_per_s'] / sign:>10.3f}")
        print(f"    request latency p50 {r['latency_p50_s'] or 0:.3f} s, "
              f"max {r['latency_max_s'] or 0:.3f} s ({r['requests']} requests)")
        print("    CPU seconds per 10k events: " + ", ".join(
            f"{k} {v * 10000 / max(r['events'], 1):.2f}"
            for k, v in sorted(r["cpu_s"].items(), key=lambda kv: -kv[1])))
    if a.json:
        print(json.dumps({"sign_per_s": sign, "sign_before": sign_before,
                          "sign_after": sign_after, "phases": results,
                          "args": {k: v for k, v in vars(a).items()}}))
    if not ok:
        print("bench_pipeline: FAILED (see errors above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
