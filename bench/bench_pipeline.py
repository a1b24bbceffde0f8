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

Open loop (--open-loop RATES, e.g. 1000,5000,10000): after the closed-loop phases, for each
rate R a fixed schedule of small ack=committed requests (sizes drawn uniformly from
--request-size, default 1-50 events, as real providers send) is offered at R events/s for
--duration seconds (evenly spaced, or --arrivals poisson), whatever the system does: a request
is sent at its scheduled time, or at once if the generator is behind, and every event's
submit->committed latency is measured from its *scheduled* time (which corrects coordinated
omission: a stall delays the requests behind it and is counted in their latency). Reported per
rate: offered and achieved committed events/s, p50/p99/p99.9/max latency per event, CPU
microseconds per committed event of every process, Redis commands per event (INFO
commandstats), peak RSS of every process (VmHWM) and whether it grew during the run.

Events are fictional: distinct valid-format NI numbers made up here, qualification
codes from data/catalogue.json that PRV-0001 is approved for on the completion date.
Loopback only; every wait is bounded (--max-seconds overall, --batch-timeout per batch).

Run (after building):
  /usr/bin/python3 bench/bench_pipeline.py --build-dir build [--events 20000] [--connections 4]
  /usr/bin/python3 bench/bench_pipeline.py --build-dir build --phases committed \
      --open-loop 1000,5000,10000 --duration 60
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
    p.add_argument("--open-loop", default="",
                   help="offered rates in events/s for open-loop runs, e.g. 1000,5000,10000 (default none)")
    p.add_argument("--duration", type=float, default=60.0,
                   help="seconds each open-loop rate is offered (default 60)")
    p.add_argument("--request-size", default="1-50",
                   help="events per open-loop request, MIN-MAX drawn uniformly (default 1-50)")
    p.add_argument("--arrivals", choices=("even", "poisson"), default="even",
                   help="open-loop request spacing (default even)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the open-loop schedule")
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
    a.phases = [x.strip() for x in a.phases.split(",") if x.strip() and x.strip() != "none"]
    if any(x not in ("accepted", "committed") for x in a.phases):
        p.error("--phases takes accepted and/or committed (or none)")
    try:
        a.open_loop = [int(x) for x in a.open_loop.split(",") if x.strip()]
        lo, hi = (int(x) for x in a.request_size.split("-", 1))
    except ValueError:
        p.error("--open-loop takes whole rates separated by commas; --request-size MIN-MAX")
    if any(r < 1 or r > 200000 for r in a.open_loop) or not 1 <= lo <= hi <= 500:
        p.error("open-loop rates must be 1..200000 events/s, request sizes 1..500")
    a.request_size = (lo, hi)
    if not a.phases and not a.open_loop:
        p.error("nothing to run: give --phases or --open-loop")
    if a.duration <= 0 or a.duration > 3600:
        p.error("--duration must be in (0, 3600] seconds")
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


# ---- open loop --------------------------------------------------------------

def build_schedule(pb, tag, first, rate, duration, sizes, arrivals, seed, codes, completion):
    """The open-loop offer: [(scheduled offset s, request id, bytes, events)], prebuilt so the
    generator's own serialisation cost stays out of the clock. Sizes are uniform in sizes."""
    import random
    rnd = random.Random(seed)
    out, t, i, k = [], 0.0, first, 0
    mean = (sizes[0] + sizes[1]) / 2.0
    gap = mean / rate                                 # mean seconds between requests
    while t < duration:
        n = rnd.randint(sizes[0], sizes[1])
        req = pb.SubmitRequest()
        req.ack = pb.ACK_LEVEL_COMMITTED
        req.request_id = f"{tag}-{k}"
        for j in range(i, i + n):
            ev = req.events.add()
            ev.provider_event_id = f"bench-{tag}-{j:08d}"
            ev.ni_number = fake_ni(j)
            ev.qualification_code = codes[j % len(codes)]
            ev.completion_date = completion
            ev.assessor_id = f"ASR-0001-{j % 1000:03d}"
            ev.evidence_hash = hashlib.sha256(ev.provider_event_id.encode()).digest()
        out.append((t, req.request_id, req.SerializeToString(), n))
        i += n
        k += 1
        t += rnd.expovariate(1.0 / gap) if arrivals == "poisson" else gap
    return out, i


class OpenTally:
    """Per-event latencies (scheduled send -> committed reply) and outcomes (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.lat = []             # (latency s, events) per reply
        self.committed = 0        # events answered committed
        self.other = {}           # other outcomes -> count
        self.errors = []          # request-level errors / timeouts
        self.behind_max = 0.0     # how late the generator sent a request at worst (s)

    def add(self, pb, rep, latency):
        with self.lock:
            if rep.error_code:
                self.errors.append(f"{rep.request_id}: {rep.error_code} {rep.error_message}")
            n = 0
            for r in rep.replies:
                if r.outcome == pb.OUTCOME_COMMITTED:
                    n += 1
                else:
                    name = pb.Outcome.Name(r.outcome)
                    self.other[name] = self.other.get(name, 0) + 1
            self.committed += n
            self.lat.append((latency, n))


def open_worker(system, schedule, t0, tally, timeout):
    """One DEALER: send each request at t0 + its offset (at once when behind), read replies."""
    pb = system.pb
    sock = system.dealer(harness.DEFAULT_PROVIDER)
    pending = {}                      # request id -> scheduled absolute time
    k = 0
    end = t0 + (schedule[-1][0] if schedule else 0) + timeout
    try:
        while k < len(schedule) or pending:
            now = time.monotonic()
            while k < len(schedule) and t0 + schedule[k][0] <= now:
                off, rid, data, _ = schedule[k]
                sock.send(data)
                pending[rid] = t0 + off
                tally.behind_max = max(tally.behind_max, now - (t0 + off))
                k += 1
            if now > end:
                tally.errors.append(f"{len(pending)} requests unanswered after the run")
                return
            nxt = t0 + schedule[k][0] if k < len(schedule) else end
            wait_ms = max(0, int((nxt - time.monotonic()) * 1000))
            while sock.poll(wait_ms):
                rep = pb.SubmitReply()
                rep.ParseFromString(sock.recv())
                at = time.monotonic()
                sched = pending.pop(rep.request_id, None)
                if sched is not None:
                    tally.add(pb, rep, at - sched)
                wait_ms = 0
    finally:
        sock.close(linger=0)


def redis_info(system):
    """(total commands processed, {command: calls}) from INFO commandstats."""
    with system.redis() as r:
        text = r.cmd("INFO", "commandstats")
    if isinstance(text, bytes):
        text = text.decode()
    calls = {}
    for line in str(text).splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            kv = dict(x.split("=", 1) for x in rest.split(","))
            calls[name] = int(kv.get("calls", 0))
    return sum(calls.values()), calls


def peak_rss_kb(system):
    """{process: (VmHWM kB, VmRSS kB)} of every service and redis-server."""
    procs = dict(system.procs)
    if system.redis_proc is not None:
        procs["redis"] = system.redis_proc
    out = {}
    for name, proc in procs.items():
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                st = dict(line.split(":", 1) for line in f if ":" in line)
            out[name] = (int(st["VmHWM"].split()[0]), int(st["VmRSS"].split()[0]))
        except (OSError, KeyError, ValueError):
            pass
    return out


def percentile(weighted, q):
    """The q-quantile (0..1) of [(value, weight)] sorted by value."""
    total = sum(w for _, w in weighted)
    if total == 0:
        return None
    want, acc = q * total, 0
    for v, w in weighted:
        acc += w
        if acc >= want:
            return v
    return weighted[-1][0]


def run_open(system, rate, schedule, connections, timeout):
    """Offer `schedule` over `connections` DEALERs; figures of one open-loop rate."""
    n_events = sum(x[3] for x in schedule)
    cpu0, (cmd0, _), rss0 = cpu_seconds(system), redis_info(system), peak_rss_kb(system)
    tally = OpenTally()
    t0 = time.monotonic() + 0.2
    shares = [schedule[i::connections] for i in range(connections)]
    threads = [threading.Thread(target=open_worker, args=(system, sh, t0, tally, timeout), daemon=True)
               for sh in shares if sh]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout + (schedule[-1][0] if schedule else 0) + 30)
    elapsed = time.monotonic() - t0
    cpu1, (cmd1, _), rss1 = cpu_seconds(system), redis_info(system), peak_rss_kb(system)
    lat = sorted(tally.lat)
    done = max(tally.committed, 1)
    return {
        "rate": rate, "events": n_events, "requests": len(schedule),
        "offered_per_s": n_events / schedule[-1][0] if len(schedule) > 1 and schedule[-1][0] > 0 else rate,
        "committed": tally.committed, "committed_per_s": tally.committed / elapsed if elapsed > 0 else 0.0,
        "other": tally.other, "errors": tally.errors[:5], "n_errors": len(tally.errors),
        "behind_max_s": tally.behind_max,
        "p50_s": percentile(lat, 0.50), "p99_s": percentile(lat, 0.99), "p999_s": percentile(lat, 0.999),
        "max_s": lat[-1][0] if lat else None,
        "cpu_us_per_event": {k: round((cpu1[k] - cpu0.get(k, 0.0)) * 1e6 / done, 1) for k in cpu1},
        "redis_cmds_per_event": round((cmd1 - cmd0) / done, 2),
        "rss_kb": {k: {"peak": v[0], "start": rss0.get(k, (0, 0))[1], "end": v[1]} for k, v in rss1.items()},
    }


def print_open(r, sign):
    f = lambda x: f"{x * 1000:.1f} ms" if x is not None else "-"   # noqa: E731
    print(f"  open loop {r['rate']:,} events/s offered ({r['requests']} requests, {r['events']} events): "
          f"{r['committed_per_s']:,.0f} committed/s ({r['committed_per_s'] / sign:.3f} of raw sign)")
    print(f"    submit->committed per event: p50 {f(r['p50_s'])}, p99 {f(r['p99_s'])}, "
          f"p99.9 {f(r['p999_s'])}, max {f(r['max_s'])}; generator at most {f(r['behind_max_s'])} behind")
    if r["other"] or r["n_errors"]:
        print(f"    other outcomes {r['other']}; {r['n_errors']} errors {r['errors']}")
    print("    CPU us per committed event: " + ", ".join(
        f"{k} {v:.1f}" for k, v in sorted(r["cpu_us_per_event"].items(), key=lambda kv: -kv[1])))
    print(f"    Redis commands per committed event: {r['redis_cmds_per_event']:.2f}")
    print("    RSS MB start/end/peak: " + ", ".join(
        f"{k} {v['start'] / 1024:.0f}/{v['end'] / 1024:.0f}/{v['peak'] / 1024:.0f}"
        for k, v in sorted(r["rss_kb"].items())))


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
    schedules = {}
    nxt = (len(a.phases) + 1) * a.events + 1000
    for k, rate in enumerate(a.open_loop):
        schedules[rate], nxt = build_schedule(pb, f"ol{rate}", nxt, rate, a.duration, a.request_size,
                                              a.arrivals, a.seed + k, codes, completion)
    if a.open_loop:
        print(f"  open-loop schedules built: " + ", ".join(
            f"{r}/s {len(sch)} requests" for r, sch in schedules.items()), flush=True)

    sign_before = raw_sign_rate(build_dir, a.sign_seconds)
    print(f"  raw Ed25519 signing (before): {sign_before:,.0f} sig/s", flush=True)

    tmp = tempfile.mkdtemp(prefix="cp-bench-pipeline-", dir=a.dir)
    results = []
    open_results = []
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
        open_results = []
        for rate in a.open_loop:
            o = run_open(system, rate, schedules[rate], a.connections, a.batch_timeout)
            open_results.append(o)
            ok = ok and o["n_errors"] == 0 and o["committed"] == o["events"]
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
    for o in open_results:
        print_open(o, sign)
    if a.json:
        print(json.dumps({"sign_per_s": sign, "sign_before": sign_before,
                          "sign_after": sign_after, "phases": results, "open_loop": open_results,
                          "args": {k: v for k, v in vars(a).items()}}))
    if not ok:
        print("bench_pipeline: FAILED (see errors above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
