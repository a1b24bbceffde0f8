#!/usr/bin/python3
"""fault_run.py -- the fault suite: a real carepass under load while its parts are killed,
stopped and starved, then judged from the register and the providers' own records.

    /usr/bin/python3 tests/faults/fault_run.py [--seed N] [--events 3000] [--rate 100]
        [--rounds 1] [--batch 25] [--build build] [--keep DIR]

What it runs (loopback only, every loop bounded, a recorded seed):
  * the whole system (Redis with its append-only file, bus, intake, verify, signer, notify,
    gateway) from tests/integration/harness.py;
  * three providers sending at --rate events/s in all: PRV-0001 and PRV-0002 over CurveZMQ,
    PRV-0005 over HTTP (POST /v1/events with its token); each keeps its own record of the
    final answer to every event it sent, resending what has no final answer (a timeout, an
    ACCEPTED answer, UNAVAILABLE or BUSY) as a real provider would;
  * 1 event in 100 invalid (an unknown qualification, rejected by verify) and 1 in 100 a
    revocation of one of the provider's earlier committed records;
  * every round, each of these faults once, in an order from the seed:
      SIGKILL of notify, signer, verify, intake, bus and gateway at a random moment;
      SIGKILL of notify, signer and bus 0-30 ms after the checkpoint grows (a commit);
      Redis SIGKILL'd and restarted on its append-only data;
      SIGSTOP of notify (past its outbox lease), of the signer (past intake's ack timeout)
      and of verify, then SIGCONT;
      the providers' webhook receiver answering 500 for a while, and hanging past notify's
      timeout for a while.

Verdict (printed, and the exit status):
  * register: the checkpoint signature and the RFC 6962 root verify (register_check.py, an
    independent reader); every event a provider holds as COMMITTED is in the register once,
    at the index it was told; no event twice; nothing rejected in it;
  * webhooks, per type (event.accepted, event.rejected, record.committed, record.revoked):
    expected (from the providers' records), delivered at least once, duplicated, lost;
  * expiry: every committed record with a future valid_until has its expiry schedule
    (cp:exp:{index}), and every revoked one has it retired.
Exit 0 when nothing is lost, nothing is duplicated in the register, every audit passes and
every schedule is there; 1 otherwise; 2 when the run itself could not finish.

A short variant runs in CI (ctest faults.short: 3,000 events, one round); the long one
(tests/faults/README.md) is --events 200000 --rate 1000 --rounds 5 --batch 100.
"""

import argparse
import http.client
import http.server
import json
import os
import random
import shutil
import signal
import socketserver
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import zmq  # noqa: E402

from harness import CarepassSystem, RespError, event, to_pb_event  # noqa: E402
from register_check import Register  # noqa: E402

ZMQ_PROVIDERS = ("PRV-0001", "PRV-0002")
HTTP_PROVIDER = "PRV-0005"
QUALS = ("RF-FIRE", "RF-SAFEG")            # refreshers every provider here may award
BAD_QUAL = "RF-NOT-IN-CATALOGUE"           # syntactically fine: verify rejects it
BATCH_MAX = 25                             # events per request at most (--batch)
ACK_TIMEOUT_MS = 2000                      # intake/gateway answer ACCEPTED after this
REQUEST_TIMEOUT_S = 6.0                    # a provider gives up waiting for an answer
OUTBOX_LEASE_MS = 2000
WEBHOOK_TIMEOUT_MS = 1000
TYPES = ("event.accepted", "event.rejected", "record.committed", "record.revoked")
REVOCATION = 2                             # register.proto ENTRY_TYPE_REVOCATION
RECORD = 1


def log(msg):
    sys.stdout.write(time.strftime("%H:%M:%S ") + msg + "\n")
    sys.stdout.flush()


# ---- the providers' webhook receiver -------------------------------------------------

class Receiver:
    """An HTTP receiver that counts 2xx-answered webhooks by (type, provider, event id) and can
    be told to answer 500 or to hang for a while. Keeps counts only (a long run sends millions)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = Counter()           # (type, provider, provider_event_id) -> 2xx deliveries
        self.ids = {}                  # key -> webhook-id (one per key, or the key is duplicated)
        self.other_ids = 0             # a key delivered under a second id: a bug
        self.requests = 0
        self.status = 200
        self.delay = 0.0
        rx = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(n)
                with rx.lock:
                    rx.requests += 1
                    status, delay = rx.status, rx.delay
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()
                if 200 <= status < 300:
                    try:
                        j = json.loads(body)
                        d = j["data"]
                        key = (j["type"], d["provider_id"], d["provider_event_id"])
                    except (ValueError, KeyError):
                        return
                    wid = self.headers.get("webhook-id", "")
                    with rx.lock:
                        rx.got[key] += 1
                        if rx.ids.setdefault(key, wid) != wid:
                            rx.other_ids += 1

            def log_message(self, *a):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            request_queue_size = 256

            def handle_error(self, request, client_address):
                pass   # notify killed mid-request resets its connections: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set(self, status=200, delay=0.0):
        with self.lock:
            self.status, self.delay = status, delay

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---- providers -------------------------------------------------------------------------

class Provider:
    """One provider's client: makes events at its share of the rate, sends them, resends what
    has no final answer, and keeps its own record of every final answer."""

    def __init__(self, system, pid, rate, total, rng, stop):
        self.system, self.pid, self.rate, self.total = system, pid, rate, total
        self.rng, self.stop = rng, stop
        self.made = 0
        self.events = {}               # event id -> event dict
        self.waiting = {}              # event id -> monotonic time it may be sent again
        self.final = {}                # event id -> ("committed", index) | ("rejected", reason)
        self.revokable = []            # committed completions not yet targeted
        self.revocations = {}          # revocation event id -> target event id
        self.unexpected = []           # answers no provider should get here
        self.requests = self.timeouts = self.busy = self.unavailable = 0
        self.batch = BATCH_MAX

    # an event of this provider's own: its NI numbers are made up (valid format), dates in 2026
    def new_event(self):
        n = self.made
        self.made += 1
        eid = f"{self.pid}-e{n}"
        roll = self.rng.random()
        if roll < 0.01 and self.revokable:
            target = self.revokable.pop(self.rng.randrange(len(self.revokable)))
            t = self.events[target]
            ev = dict(t, provider_event_id=eid, kind="revocation", revokes_event_id=target,
                      revocation_reason="ISSUED_IN_ERROR")
            self.revocations[eid] = target
        else:
            qual = BAD_QUAL if roll > 0.99 else self.rng.choice(QUALS)
            day = 1 + self.rng.randrange(300)
            month, dom = 1 + (day - 1) // 28 % 11, 1 + (day - 1) % 28
            ni = "%s%06d%s" % (self.rng.choice(("AB", "CE", "JG", "KL")), self.rng.randrange(10**6),
                               self.rng.choice("ABCD"))
            ev = event(eid, ni_number=ni, qualification_code=qual,
                       completion_date="2026-%02d-%02d" % (month, dom))
        self.events[eid] = ev
        self.waiting[eid] = 0.0
        return eid

    def next_batch(self, started):
        """Events due to be sent now: new ones at the offered rate, then resends."""
        now = time.monotonic()
        want = min(self.total, int((now - started) * self.rate) + 1)
        while self.made < want and len(self.waiting) < 4 * self.batch:
            self.new_event()
        due = [e for e, t in self.waiting.items() if t <= now]
        return due[:self.batch]

    def record(self, eid, outcome, reason, index):
        """A final answer goes into the provider's records; anything else waits for a resend."""
        if outcome == "committed":
            self.final[eid] = ("committed", index)
            self.waiting.pop(eid, None)
            if eid not in self.revocations and self.events[eid]["qualification_code"] != BAD_QUAL:
                self.revokable.append(eid)
        elif outcome == "rejected" and reason in ("BUSY", "UNAVAILABLE", "INTERNAL"):
            if reason == "BUSY":
                self.busy += 1
            else:
                self.unavailable += 1
            self.waiting[eid] = time.monotonic() + 0.5
        elif outcome == "rejected":
            self.final[eid] = ("rejected", reason)
            self.waiting.pop(eid, None)
            expected_reason = "UNKNOWN_QUALIFICATION" if self.events[eid]["qualification_code"] == BAD_QUAL \
                else None
            if reason != expected_reason:
                self.unexpected.append((eid, reason))
        else:   # accepted (not final yet), or no answer: ask again a little later
            self.waiting[eid] = time.monotonic() + 0.3

    def done(self):
        return self.made >= self.total and not self.waiting

    def run(self, started, deadline):
        while not self.stop.is_set() and time.monotonic() < deadline and not self.done():
            batch = self.next_batch(started)
            if not batch:
                time.sleep(0.01)
                continue
            for eid in batch:
                self.waiting[eid] = time.monotonic() + 60   # in flight
            self.requests += 1
            answers = self.send(batch)
            if answers is None:
                self.timeouts += 1
                for eid in batch:
                    self.waiting[eid] = time.monotonic() + 0.3
                time.sleep(0.2)
                continue
            for eid in batch:
                outcome, reason, index = answers.get(eid, ("none", "", 0))
                self.record(eid, outcome, reason, index)


class ZmqProvider(Provider):
    def __init__(self, *a):
        super().__init__(*a)
        self.sock = None
        self.seq = 0

    def send(self, batch):
        pb = self.system.pb
        if self.sock is None:
            self.sock = self.system.dealer(self.pid)
        req = pb.SubmitRequest(ack=pb.ACK_LEVEL_COMMITTED)
        self.seq += 1
        req.request_id = f"{self.pid}-r{self.seq}"
        for eid in batch:
            req.events.append(to_pb_event(self.events[eid]))
        self.sock.send(req.SerializeToString())
        end = time.monotonic() + REQUEST_TIMEOUT_S
        while True:
            left = end - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000)):
                self.sock.close(linger=0)     # a late reply must not be read as another's
                self.sock = None
                return None
            rep = pb.SubmitReply.FromString(self.sock.recv())
            if rep.request_id != req.request_id:
                continue
            if rep.error_code:
                if rep.error_code != "UNAVAILABLE":
                    self.unexpected.append(("request", rep.error_code))
                self.unavailable += 1
                return {}
            return {r.provider_event_id: (pb.Outcome.Name(r.outcome).replace("OUTCOME_", "").lower(),
                                          r.reason_code, r.entry_index) for r in rep.replies}


class HttpProvider(Provider):
    def __init__(self, *a):
        super().__init__(*a)
        self.token = self.system.provider_token(self.pid)

    def send(self, batch):
        body = json.dumps([self.events[e] for e in batch]).encode()
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.system.gateway_port, timeout=REQUEST_TIMEOUT_S)
            c.request("POST", "/v1/events?ack=committed", body,
                      {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            c.close()
        except (OSError, http.client.HTTPException):
            return None
        if r.status != 200:
            if r.status not in (429, 500, 502, 503, 504):
                self.unexpected.append(("http", r.status, data[:200]))
            self.unavailable += 1
            return {}
        return {x["provider_event_id"]: (x["outcome"], x.get("reason_code", ""), x.get("entry_index", 0))
                for x in json.loads(data)["replies"]}


# ---- faults ----------------------------------------------------------------------------

class Faults:
    def __init__(self, system, rx, rng, stop):
        self.system, self.rx, self.rng, self.stop = system, rx, rng, stop
        self.done = []
        self.during_load = 0           # faults that began while providers were still sending new events

    def checkpoint(self):
        try:
            return (self.system.register_dir / "checkpoint").read_bytes()
        except OSError:
            return b""

    def restart(self, svc):
        if svc == "redis":
            self.system.start_redis()
            return
        for attempt in range(5):
            try:
                self.system.start_service(svc)
                self.system.wait_healthy(svc)
                return
            except (RuntimeError, TimeoutError) as exc:   # e.g. its port not yet free
                log(f"  {svc} did not start ({str(exc).splitlines()[0]}); again")
                time.sleep(0.5)
        raise RuntimeError(f"{svc} could not be restarted")

    def kill(self, svc):
        if svc == "redis":
            self.system.kill("redis", signal.SIGKILL)
            self.system.redis_proc.wait(timeout=10)
        else:
            self.system.kill(svc, signal.SIGKILL)
        time.sleep(self.rng.uniform(0.1, 0.6))
        self.restart(svc)

    def at_commit(self, svc):
        """SIGKILL svc 0-30 ms after the checkpoint grows (after a batch is committed)."""
        before = self.checkpoint()
        end = time.monotonic() + 10
        while self.checkpoint() == before and time.monotonic() < end:
            time.sleep(0.001)
        time.sleep(self.rng.uniform(0, 0.030))
        self.kill(svc)

    def pause(self, svc, seconds):
        self.system.kill(svc, signal.SIGSTOP)
        time.sleep(seconds)
        self.system.kill(svc, signal.SIGCONT)

    def plan(self, rounds):
        one = [("kill", s) for s in ("notify", "signer", "verify", "intake", "bus", "gateway")]
        one += [("at_commit", s) for s in ("notify", "signer", "bus")]
        one += [("kill", "redis"), ("at_commit", "redis")]
        one += [("pause", "notify"), ("pause", "signer"), ("pause", "verify")]
        one += [("rx500", ""), ("rxhang", "")]
        out = []
        for _ in range(rounds):
            r = list(one)
            self.rng.shuffle(r)
            out += r
        return out

    def pause_s(self, svc):
        return {"notify": OUTBOX_LEASE_MS / 1000 + 1.0, "signer": ACK_TIMEOUT_MS / 1000 + 1.0,
                "verify": 2.5}[svc]

    def estimate_s(self, plan):
        """About how long the plan's faults take themselves (restarts, pauses, receiver spells)."""
        each = {"kill": 0.7, "at_commit": 0.8, "rx500": 2.0, "rxhang": 3.0}
        return sum(self.pause_s(svc) if kind == "pause" else each[kind] for kind, svc in plan)

    def run(self, plan, gap, loading):
        for kind, svc in plan:
            if self.stop.wait(self.rng.uniform(0.5 * gap, 1.5 * gap)):
                return
            if loading():
                self.during_load += 1
            t0 = time.monotonic()
            if kind == "kill":
                self.kill(svc)
            elif kind == "at_commit":
                self.at_commit(svc)
            elif kind == "pause":
                self.pause(svc, self.pause_s(svc))
            elif kind == "rx500":
                self.rx.set(status=500)
                time.sleep(2.0)
                self.rx.set()
            elif kind == "rxhang":
                self.rx.set(delay=WEBHOOK_TIMEOUT_MS / 1000 + 1.0)
                time.sleep(3.0)
                self.rx.set()
            self.done.append(f"{kind}:{svc}" if svc else kind)
            log(f"fault {kind} {svc} ({time.monotonic() - t0:.1f} s)")


# ---- the verdict -----------------------------------------------------------------------

def redis_cmd(system, *args):
    for _ in range(50):
        try:
            with system.redis() as r:
                return r.cmd(*args)
        except (OSError, ConnectionError, RespError):
            time.sleep(0.2)
    raise RuntimeError("Redis does not answer")


def expected_webhooks(providers):
    exp = set()
    for p in providers:
        for eid, (outcome, _) in p.final.items():
            exp.add(("event.accepted", p.pid, eid))
            if outcome == "rejected":
                exp.add(("event.rejected", p.pid, eid))
            elif eid in p.revocations:
                exp.add(("record.revoked", p.pid, eid))
            else:
                exp.add(("record.committed", p.pid, eid))
    return exp


def judge(system, providers, rx, today):
    problems = []
    # register, read by the independent reader
    reg = Register(system.register_dir)
    if not reg.verify_checkpoint():
        problems.append("checkpoint signature does not verify")
    if reg.root() != reg.checkpoint_root:
        problems.append("register root differs from the checkpoint's")
    at = {}
    dups = 0
    entries = {}
    for i in range(reg.size):
        pe = reg.passport_entry(i, system.register_pb)
        if pe.entry_type not in (RECORD, REVOCATION):
            continue
        key = (pe.provider_id, pe.provider_event_id)
        if key in at:
            dups += 1
        at.setdefault(key, i)
        entries[i] = pe
    committed = rejected = 0
    for p in providers:
        for eid, (outcome, val) in p.final.items():
            if outcome == "committed":
                committed += 1
                if at.get((p.pid, eid)) != val:
                    problems.append(f"{p.pid}/{eid}: told committed at {val}, register has {at.get((p.pid, eid))}")
            elif (p.pid, eid) in at:
                problems.append(f"{p.pid}/{eid}: rejected ({val}) but in the register")
            else:
                rejected += 1
        unfinished = [e for e in p.waiting]
        if unfinished:
            problems.append(f"{p.pid}: {len(unfinished)} events without a final answer, e.g. {unfinished[:3]}")
        if p.unexpected:
            problems.append(f"{p.pid}: unexpected answers {p.unexpected[:5]} ({len(p.unexpected)})")
    if dups:
        problems.append(f"register holds {dups} events twice")
    ours = {(p.pid, e) for p in providers for e in p.events}
    strays = [k for k in at if k not in ours]
    if strays:
        problems.append(f"register holds {len(strays)} entries no provider sent, e.g. {strays[:3]}")

    # webhooks per type
    exp = expected_webhooks(providers)
    with rx.lock:
        got = Counter(rx.got)
        other_ids = rx.other_ids
    table = {}
    for t in TYPES:
        e = {k for k in exp if k[0] == t}
        g = {k for k in got if k[0] == t}
        table[t] = {"expected": len(e), "delivered": len(e & g), "lost": len(e - g),
                    "duplicated": sum(1 for k in e & g if got[k] > 1),
                    "unexpected": len(g - e)}
        if table[t]["lost"]:
            problems.append(f"{t}: {table[t]['lost']} lost, e.g. {sorted(e - g)[:3]}")
        if table[t]["unexpected"]:
            problems.append(f"{t}: {table[t]['unexpected']} delivered that no provider record owes")
    if other_ids:
        problems.append(f"{other_ids} webhooks delivered again under a different webhook-id")

    # expiry schedules: every live record with a future valid_until has one; revoked, retired
    revoked_targets = {entries[i].revokes_index for i in entries if entries[i].entry_type == REVOCATION}
    missing = retired_wrong = 0
    checked = 0
    r = system.redis()
    for i, pe in entries.items():
        if pe.entry_type != RECORD or not pe.valid_until or pe.valid_until < today:
            continue
        checked += 1
        state = r.cmd("HGET", "cp:exp:{%d}" % i, "state")
        if i in revoked_targets:
            if state not in (None, b"revoked"):
                retired_wrong += 1
        elif state is None or state == b"revoked":
            missing += 1
    r.close()
    if missing:
        problems.append(f"{missing} expiring records without an expiry schedule")
    if retired_wrong:
        problems.append(f"{retired_wrong} revoked records whose expiry schedule was not retired")
    dead = int(redis_cmd(system, "LLEN", "cp:nt:dead") or 0)
    return {"register": {"entries": reg.size, "committed_events": committed, "rejected_events": rejected,
                         "duplicates": dups},
            "webhooks": table, "dead_letters": dead,
            "expiry": {"records_checked": checked, "missing": missing, "not_retired": retired_wrong}}, problems


def settle(system, providers, rx, deadline):
    """Wait until every owed webhook arrived and the outbox and the retry schedule are empty."""
    exp = expected_webhooks(providers)
    while time.monotonic() < deadline:
        try:
            outbox = int(redis_cmd(system, "XLEN", "cp:{outbox}") or 0)
            due = int(redis_cmd(system, "ZCARD", "cp:nt:due") or 0)
        except RuntimeError:
            outbox = due = -1
        with rx.lock:
            have = set(rx.got)
        if outbox == 0 and due == 0 and exp <= have:
            return True
        time.sleep(0.5)
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=100.0, help="events/s offered by all providers")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of every fault")
    ap.add_argument("--batch", type=int, default=BATCH_MAX, help="events per request at most")
    ap.add_argument("--build", default=os.environ.get("CAREPASS_BUILD_DIR", "build"))
    ap.add_argument("--keep", default=None, help="keep the run's directory (logs, register) here")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    log(f"fault run: seed {seed}, {args.events} events at {args.rate:g}/s, {args.rounds} round(s)")

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cp-faults-"))
    tmp.mkdir(parents=True, exist_ok=True)
    rx = Receiver()
    env = {"CAREPASS_ACK_TIMEOUT_MS": ACK_TIMEOUT_MS, "CAREPASS_REDRIVE_AFTER_MS": 1000,
           "CAREPASS_NOTIFY_OUTBOX_LEASE_MS": OUTBOX_LEASE_MS,
           "CAREPASS_WEBHOOK_TIMEOUT_MS": WEBHOOK_TIMEOUT_MS, "CAREPASS_WEBHOOK_BACKOFF_MS": 100,
           "CAREPASS_WEBHOOK_BACKOFF_MAX_MS": 1000, "CAREPASS_WEBHOOK_BREAKER_PARK_MS": 500,
           "CAREPASS_REDIS_TIMEOUT_MS": 1000, "CAREPASS_LOG_LEVEL": "info"}
    hooks = {p: {"webhook_url": rx.url} for p in ZMQ_PROVIDERS + (HTTP_PROVIDER,)}
    system = CarepassSystem(tmp / "sys", build_dir=Path(args.build).resolve(), redis_persist=True, extra_env=env,
                            services=("bus", "intake", "verify", "signer", "notify", "gateway"),
                            providers=hooks, start=False)
    stop = threading.Event()
    code = 2
    try:
        system.start()
        today = time.strftime("%Y-%m-%d", time.gmtime())
        share = args.events // 3
        totals = [share, share, args.events - 2 * share]
        providers = [ZmqProvider(system, ZMQ_PROVIDERS[0], args.rate / 3, totals[0], random.Random(rng.random()), stop),
                     ZmqProvider(system, ZMQ_PROVIDERS[1], args.rate / 3, totals[1], random.Random(rng.random()), stop),
                     HttpProvider(system, HTTP_PROVIDER, args.rate / 3, totals[2], random.Random(rng.random()), stop)]
        for p in providers:
            p.batch = max(1, min(args.batch, 500))
        faults = Faults(system, rx, random.Random(rng.random()), stop)
        plan = faults.plan(args.rounds)
        load_s = args.events / args.rate
        started = time.monotonic()
        deadline = started + load_s * 2 + 180
        threads = [threading.Thread(target=p.run, args=(started, deadline), daemon=True) for p in providers]
        for t in threads:
            t.start()
        # spread the faults over the load: what is left of it after the faults' own time, in gaps
        gap = max(0.2, (load_s - faults.estimate_s(plan)) / (len(plan) + 1))
        loading = lambda: any(p.made < p.total for p in providers)  # noqa: E731
        ft = threading.Thread(target=faults.run, args=(plan, gap, loading), daemon=True)
        ft.start()
        ft.join(deadline - time.monotonic())
        for t in threads:
            t.join(max(0, deadline - time.monotonic()))
        log(f"load done in {time.monotonic() - started:.1f} s; {len(faults.done)}/{len(plan)} faults, "
            f"{faults.during_load} of them while new events were still being sent")
        quiet_s = 120 + args.events / 200
        settled = settle(system, providers, rx, time.monotonic() + quiet_s)
        if not settled:
            log(f"webhooks still owed after {quiet_s:.0f} s of quiet (counted as lost below)")
        stop.set()
        verdict, problems = judge(system, providers, rx, today)
        verdict.update({"seed": seed, "events": args.events, "rate": args.rate, "rounds": args.rounds,
                        "faults": faults.done, "faults_during_load": faults.during_load,
                        "providers": {p.pid: {"sent": p.made, "requests": p.requests, "timeouts": p.timeouts,
                                              "busy": p.busy, "unavailable": p.unavailable,
                                              "revocations": len(p.revocations)} for p in providers},
                        "receiver_requests": rx.requests, "problems": problems})
        print(json.dumps(verdict, indent=2))
        for t in TYPES:
            w = verdict["webhooks"][t]
            log(f"{t:17} expected {w['expected']:7}  delivered {w['delivered']:7}  "
                f"lost {w['lost']:5}  duplicated {w['duplicated']:5}")
        log(("PASS" if not problems else "FAIL: " + "; ".join(problems)) + f" (seed {seed})")
        code = 0 if not problems and len(faults.done) == len(plan) else 1
        if len(faults.done) != len(plan):
            log(f"only {len(faults.done)} of {len(plan)} faults ran")
    except BaseException as exc:
        stop.set()
        log(f"run did not finish: {exc!r} (seed {seed})")
        raise
    finally:
        stop.set()
        system.stop(show_logs=code != 0)
        rx.stop()
        if not args.keep and code == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        elif not args.keep:
            log(f"logs and register kept in {tmp}")
    return code


if __name__ == "__main__":
    sys.exit(main())
