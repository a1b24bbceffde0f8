#!/usr/bin/python3
"""intake_smoke.py -- end-to-end smoke check of bus + intake against a real redis-server.

Starts redis-server, bus and intake on free 127.0.0.1 ports in a temp dir, then talks to
intake as CurveZMQ DEALER/REQ clients and plays verify/signer by hand (a PULL on the verify
queue, HSETs in Redis, a PUB on the results topic). Exits 0 when every check passes.

  CAREPASS_BUILD_DIR=build PYTHONPATH=build/gen/py /usr/bin/python3 tests/integration/intake_smoke.py

Not collected by pytest (no test_ prefix); the integration suite can import run_smoke().
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CAREPASS_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
BUILD = os.environ.get("CAREPASS_BUILD_DIR", os.path.join(SOURCE, "build"))
sys.path.insert(0, os.path.join(BUILD, "gen", "py"))

from carepass.v1 import event_pb2, internal_pb2  # noqa: E402
from harness import Resp  # noqa: E402

E = event_pb2
NI_GOOD = "AB123456C"
NI_BAD = "QQ123456C"  # QQ is not an allowed prefix
TOPIC = b"intake-smoke"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not listening after {timeout}s")


class Failures:
    def __init__(self):
        self.failed = []
        self.passed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
            print(f"ok   {what}")
        else:
            self.failed.append(what)
            print(f"FAIL {what}")


def event(eid, ni=NI_GOOD, code="CC-STD-01", date="2024-05-01", **kw):
    kw.setdefault("assessor_id", "ASR-1")
    return E.CompletionEvent(provider_event_id=eid, ni_number=ni, qualification_code=code,
                             completion_date=date, **kw)


def request(events, ack=E.ACK_LEVEL_ACCEPTED, rid="r"):
    return E.SubmitRequest(events=events, ack=ack, request_id=rid)


class Env:
    """The processes and sockets of one smoke run."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.ctx = zmq.Context()
        self.procs = {}
        self.ports = {k: free_port() for k in
                      ["redis", "vin", "vout", "rin", "rout", "intake"]}
        self.prov1_pub, self.prov1_sec = zmq.curve_keypair()
        self.prov2_pub, self.prov2_sec = zmq.curve_keypair()
        os.makedirs(os.path.join(tmp, "keys"), mode=0o700)
        os.makedirs(os.path.join(tmp, "health"))
        providers = {"version": 1, "providers": [
            {"id": "PRV-0001", "name": "Smoke Training Ltd", "curve_public_key": self.prov1_pub.decode(),
             "webhook_url": "", "approvals": [{"code": "CC-STD-*", "from": "2015-04-01", "to": ""}]},
            {"id": "PRV-0002", "name": "Other Provider", "curve_public_key": self.prov2_pub.decode(),
             "webhook_url": "", "approvals": [{"code": "CC-STD-*", "from": "2015-04-01", "to": ""}]},
        ]}
        with open(os.path.join(tmp, "providers.json"), "w") as f:
            json.dump(providers, f)
        p = self.ports
        self.env = dict(os.environ)
        self.env.update({
            "CAREPASS_REDIS_PORT": str(p["redis"]),
            "CAREPASS_BUS_VERIFY_IN": f"tcp://127.0.0.1:{p['vin']}",
            "CAREPASS_BUS_VERIFY_OUT": f"tcp://127.0.0.1:{p['vout']}",
            "CAREPASS_BUS_RESULTS_IN": f"tcp://127.0.0.1:{p['rin']}",
            "CAREPASS_BUS_RESULTS_OUT": f"tcp://127.0.0.1:{p['rout']}",
            "CAREPASS_INTAKE_BIND": f"tcp://127.0.0.1:{p['intake']}",
            "CAREPASS_INTAKE_CURVE_KEY": os.path.join(tmp, "keys", "intake.curve"),
            "CAREPASS_PSEUDONYM_SECRET": os.path.join(tmp, "keys", "pseudonym.secret"),
            "CAREPASS_PROVIDERS": os.path.join(tmp, "providers.json"),
            "CAREPASS_INTAKE_ID": TOPIC.decode(),
            "CAREPASS_ACK_TIMEOUT_MS": "2000",
            "CAREPASS_REDRIVE_AFTER_MS": "1500",
            "CAREPASS_MAX_MESSAGE_BYTES": "4096",
            "CAREPASS_MAX_BATCH": "20",
            "CAREPASS_HEALTH_DIR": os.path.join(tmp, "health"),
            "CAREPASS_LOG_LEVEL": "info",
            "CAREPASS_REDIS_TIMEOUT_MS": "500",
        })

    def start_redis(self):
        p = self.ports
        self.procs["redis"] = subprocess.Popen(
            ["redis-server", "--port", str(p["redis"]), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(p["redis"], self.procs["redis"])

    def start(self):
        p = self.ports
        self.start_redis()
        self.bus_log = open(os.path.join(self.tmp, "bus.log"), "w")
        self.procs["bus"] = subprocess.Popen([os.path.join(BUILD, "services", "bus", "bus")],
                                             env=self.env, stderr=self.bus_log)
        wait_port(p["vin"], self.procs["bus"])
        self.intake_log_path = os.path.join(self.tmp, "intake.log")
        self.intake_log = open(self.intake_log_path, "w")
        self.procs["intake"] = subprocess.Popen(
            [os.path.join(BUILD, "services", "intake", "intake")], env=self.env,
            stderr=self.intake_log)
        wait_port(p["intake"], self.procs["intake"])
        with open(self.env["CAREPASS_INTAKE_CURVE_KEY"] + ".pub") as f:
            self.server_key = f.read().strip().encode()
        # play verify (PULL) and the signer's result publisher (PUB); notify's part is
        # take_notices(), which reads the outbox stream intake writes with each new event
        self.verify = self.ctx.socket(zmq.PULL)
        self.verify.connect(self.env["CAREPASS_BUS_VERIFY_OUT"])
        self.results = self.ctx.socket(zmq.PUB)
        self.results.connect(self.env["CAREPASS_BUS_RESULTS_IN"])
        time.sleep(0.5)  # let subscriptions and connections settle

    def client(self, pub=None, sec=None, kind=zmq.DEALER):
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        s.curve_publickey = pub or self.prov1_pub
        s.curve_secretkey = sec or self.prov1_sec
        s.curve_serverkey = self.server_key
        s.connect(self.env["CAREPASS_INTAKE_BIND"])
        return s

    def take_notices(self):
        """The NotifyJobs in the outbox stream, oldest first; taken out as notify would."""
        with Resp(self.ports["redis"]) as r:
            entries = r.cmd("XRANGE", "cp:{outbox}", "-", "+") or []
            if entries:
                r.cmd("XDEL", "cp:{outbox}", *[e[0] for e in entries])
        jobs = []
        for _, fields in entries:
            kv = dict(zip(fields[0::2], fields[1::2]))
            jobs.append(internal_pb2.NotifyJob.FromString(kv[b"j"]))
        return jobs

    def redis(self, *args):
        out = subprocess.run(["redis-cli", "-p", str(self.ports["redis"]), *args],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip()

    def stop(self):
        for name in ["intake", "bus", "redis"]:
            pr = self.procs.get(name)
            if pr is not None and pr.poll() is None:
                pr.send_signal(signal.SIGTERM)
                try:
                    pr.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pr.kill()
                    pr.wait()
        self.ctx.destroy(linger=0)


def call(sock, body, timeout_ms=3000, delimiter=False):
    """Send one request; return the SubmitReply, or None on timeout."""
    frames = [b"", body] if delimiter else [body]
    sock.send_multipart(frames)
    if not sock.poll(timeout_ms):
        return None
    parts = sock.recv_multipart()
    rep = E.SubmitReply()
    rep.ParseFromString(parts[-1])
    call.last_frames = parts
    return rep


def recv_all(sock, wait_ms=300):
    out = []
    while sock.poll(wait_ms):
        out.append(sock.recv_multipart())
        wait_ms = 100
    return out


def outcomes(rep):
    return [(r.provider_event_id, E.Outcome.Name(r.outcome), r.reason_code, r.entry_index)
            for r in rep.replies]


def run_smoke(f):
    tmp = tempfile.mkdtemp(prefix="intake-smoke-")
    env = Env(tmp)
    try:
        env.start()
        c = env.client()

        # --- A: a mixed batch with ACCEPTED acks --------------------------------------
        batch = [
            event("e1"),
            event("e2", ni=NI_BAD),
            event("e3", date="2999-01-01"),
            event("e4", evidence_hash=b"12345"),
            event("e1", code="CC-STD-02"),
            event("e6", provider_id="PRV-0002"),
            event("e7", provider_id="PRV-0001", ni="ab 12 34 56 c", evidence_hash=b"\x01" * 32),
            event("e8", kind=E.EVENT_KIND_REVOCATION, revokes_event_id="e1",
                  revocation_reason="ISSUED_IN_ERROR"),
            event("bad id!"),
        ]
        req_a = request(batch, rid="batch-a").SerializeToString()
        rep = call(c, req_a)
        f.check(rep is not None and rep.request_id == "batch-a", "A: reply to a mixed batch")
        got = outcomes(rep)
        want = [("e1", "OUTCOME_ACCEPTED", "", 0), ("e2", "OUTCOME_REJECTED", "INVALID_WORKER_ID", 0),
                ("e3", "OUTCOME_REJECTED", "DATE_IN_FUTURE", 0),
                ("e4", "OUTCOME_REJECTED", "INVALID_EVIDENCE_HASH", 0),
                ("e1", "OUTCOME_REJECTED", "DUPLICATE_IN_BATCH", 0),
                ("e6", "OUTCOME_REJECTED", "PROVIDER_MISMATCH", 0),
                ("e7", "OUTCOME_ACCEPTED", "", 0), ("e8", "OUTCOME_ACCEPTED", "", 0),
                ("bad id!", "OUTCOME_REJECTED", "INVALID_EVENT_ID", 0)]
        f.check(got == want, f"A: per-event outcomes {got}")
        f.check(all(NI_BAD not in r.message and NI_GOOD not in r.message for r in rep.replies),
                "A: no message echoes the NI number")
        f.check(len(call.last_frames) == 1, "A: DEALER without delimiter gets one frame back")
        f.check(env.redis("HGET", "cp:ev:{PRV-0001:e1}", "state") == "accepted", "A: e1 accepted in Redis")
        f.check(len(env.redis("HGET", "cp:ev:{PRV-0001:e1}", "digest")) == 64, "A: e1 digest stored")
        f.check(env.redis("ZSCORE", "cp:pending", "PRV-0001:e1") != "", "A: e1 scheduled in cp:pending")
        f.check(env.redis("EXISTS", "cp:ev:{PRV-0001:e2}") == "0", "A: rejected e2 not stored")
        fwd = recv_all(env.verify)
        pes = []
        for m in fwd:
            pe = internal_pb2.PendingEvent()
            pe.ParseFromString(m[-1])
            pes.append(pe)
        f.check(sorted(p.provider_event_id for p in pes) == ["e1", "e7", "e8"],
                f"A: new events forwarded to verify ({[p.provider_event_id for p in pes]})")
        f.check(all(p.provider_id == "PRV-0001" and len(p.worker_pseudonym) == 32 and p.reply_to == ""
                    and p.received_at > 0 for p in pes), "A: PendingEvent fields")
        f.check(all(NI_GOOD.encode() not in m[-1] and b"AB 12" not in m[-1] for m in fwd),
                "A: no NI number on the bus")
        pse = {p.provider_event_id: p.worker_pseudonym for p in pes}
        f.check(pse.get("e1") == pse.get("e7"), "A: same worker, same pseudonym (NI normalised)")
        types = [(j.type, j.provider_event_id) for j in env.take_notices()]
        f.check(sorted(types) == [("event.accepted", "e1"), ("event.accepted", "e7"),
                                  ("event.accepted", "e8")], f"A: notify jobs {types}")

        # --- B: resend gives the same answers and forwards nothing new -------------------
        rep2 = call(c, req_a)
        f.check(rep2 is not None and outcomes(rep2) == want, "B: resend gives the same answers")
        f.check(recv_all(env.verify) == [], "B: resend forwards nothing")
        f.check(env.take_notices() == [], "B: resend owes no second notice")

        # --- C: same id, different content ------------------------------------------------
        rep = call(c, request([event("e1", code="CC-STD-09")]).SerializeToString())
        f.check(rep is not None and outcomes(rep) == [("e1", "OUTCOME_REJECTED", "EVENT_ID_REUSED", 0)],
                "C: id reused with different content -> EVENT_ID_REUSED")
        # the same content with kind COMPLETION spelt out is the same event
        rep = call(c, request([event("e1", kind=E.EVENT_KIND_COMPLETION)]).SerializeToString())
        f.check(rep is not None and outcomes(rep) == [("e1", "OUTCOME_ACCEPTED", "", 0)],
                "C: explicit COMPLETION is the same content as UNSPECIFIED")

        # --- D: whole-request errors ------------------------------------------------------
        def err_of(body, **kw):
            r = call(c, body, **kw)
            return None if r is None else (r.error_code, len(r.replies))

        f.check(err_of(b"\xff\xff\xff\xff") == ("MALFORMED_REQUEST", 0), "D: malformed bytes")
        f.check(err_of(request([]).SerializeToString()) == ("BATCH_EMPTY", 0), "D: empty batch")
        f.check(err_of(request([event(f"x{i}") for i in range(21)]).SerializeToString())
                == ("BATCH_TOO_LARGE", 0), "D: 21 events > MAX_BATCH 20")
        bad_ack = request([event("z1")]).SerializeToString() + b"\x10\x07"  # field 2 (ack) = 7
        f.check(err_of(bad_ack) == ("INVALID_ACK_LEVEL", 0), "D: unknown ack level")
        big = request([event("z2")]).SerializeToString() + b"\x1a" + bytes([0x90, 0x27]) + b"r" * 5008
        f.check(err_of(big) == ("MESSAGE_TOO_LARGE", 0), "D: 5 KB > MAX_MESSAGE_BYTES 4096")
        f.check(err_of(b"\x00" * 9000, timeout_ms=1500) is None, "D: 9 KB > 2x limit: no reply")
        c.close()
        c = env.client()
        rep = call(c, request([event("e1")]).SerializeToString())
        f.check(rep is not None and outcomes(rep)[0][1] == "OUTCOME_ACCEPTED", "D: a new connection works")
        rep = call(c, request([event("z3")], rid="x" * 65).SerializeToString())
        f.check(rep is not None and rep.error_code == "MALFORMED_REQUEST", "D: request_id > 64 chars")

        # --- E/F: REQ client, DEALER with a delimiter ------------------------------------
        r = env.client(kind=zmq.REQ)
        r.send(request([event("e1")], rid="via-req").SerializeToString())
        ok = r.poll(3000)
        f.check(ok and E.SubmitReply.FromString(r.recv()).request_id == "via-req", "E: REQ client")
        r.close()
        rep = call(c, request([event("e1")], rid="delim").SerializeToString(), delimiter=True)
        f.check(rep is not None and rep.request_id == "delim" and call.last_frames[0] == b"",
                "F: DEALER with empty delimiter gets it back")

        # --- G: unregistered key: no connection -------------------------------------------
        pub, sec = zmq.curve_keypair()
        u = env.client(pub, sec)
        f.check(call(u, request([event("u1")]).SerializeToString(), timeout_ms=1500) is None,
                "G: unregistered key gets no answer")
        u.close()
        f.check(env.redis("EXISTS", "cp:ev:{PRV-0001:u1}") == "0", "G: nothing stored for it")

        # provider 2 may use its own ids, and provider_id PRV-0001 is a mismatch for it
        c2 = env.client(env.prov2_pub, env.prov2_sec)
        rep = call(c2, request([event("e1"), event("p2", provider_id="PRV-0001")]).SerializeToString())
        f.check(rep is not None and outcomes(rep) == [("e1", "OUTCOME_ACCEPTED", "", 0),
                                                      ("p2", "OUTCOME_REJECTED", "PROVIDER_MISMATCH", 0)],
                "G: identity is the key: PRV-0002 has its own e1, PRV-0001 is a mismatch")
        c2.close()
        recv_all(env.verify)
        env.take_notices()

        # --- H: COMMITTED acks: one result published, one only in Redis ------------------
        c.send_multipart([request([event("c1"), event("c2")], ack=E.ACK_LEVEL_COMMITTED,
                                  rid="commit").SerializeToString()])
        fwd = recv_all(env.verify, 2000)
        pes = [internal_pb2.PendingEvent.FromString(m[-1]) for m in fwd]
        f.check(sorted(p.provider_event_id for p in pes) == ["c1", "c2"]
                and all(p.reply_to == TOPIC.decode() for p in pes), "H: forwarded with reply_to")
        f.check(not c.poll(300), "H: no answer before the events are final")
        env.redis("HSET", "cp:ev:{PRV-0001:c1}", "state", "committed", "index", "42")
        env.results.send_multipart([TOPIC, internal_pb2.EventResult(
            provider_id="PRV-0001", provider_event_id="c1", outcome=E.OUTCOME_COMMITTED,
            entry_index=42).SerializeToString()])
        env.redis("HSET", "cp:ev:{PRV-0001:c2}", "state", "rejected", "reason", "UNKNOWN_QUALIFICATION",
                  "msg", "no such qualification")
        t0 = time.time()
        rep = E.SubmitReply.FromString(c.recv_multipart()[-1]) if c.poll(3000) else None
        f.check(rep is not None and outcomes(rep) == [("c1", "OUTCOME_COMMITTED", "", 42),
                                                      ("c2", "OUTCOME_REJECTED", "UNKNOWN_QUALIFICATION", 0)]
                and time.time() - t0 < 1.5, f"H: committed reply {rep and outcomes(rep)}")
        rep = call(c, request([event("c1"), event("c2")]).SerializeToString())
        f.check(rep is not None and outcomes(rep)[0] == ("c1", "OUTCOME_COMMITTED", "", 42)
                and rep.replies[1].message == "no such qualification", "H: resend returns final states")

        # a result published on the topic alone (nothing in Redis) answers at once
        c.send_multipart([request([event("c3")], ack=E.ACK_LEVEL_COMMITTED).SerializeToString()])
        fwd = recv_all(env.verify, 2000)
        t0 = time.time()
        env.results.send_multipart([TOPIC, internal_pb2.EventResult(
            provider_id="PRV-0001", provider_event_id="c3", outcome=E.OUTCOME_REJECTED,
            reason_code="PROVIDER_NOT_APPROVED", message="not approved").SerializeToString()])
        rep = E.SubmitReply.FromString(c.recv_multipart()[-1]) if c.poll(3000) else None
        dt = time.time() - t0
        f.check(rep is not None and outcomes(rep) == [("c3", "OUTCOME_REJECTED", "PROVIDER_NOT_APPROVED", 0)]
                and dt < 0.4, f"H: result from the topic answers in {dt:.3f}s")

        # --- I: COMMITTED ack times out -> accepted ----------------------------------------
        t0 = time.time()
        rep = call(c, request([event("t1")], ack=E.ACK_LEVEL_COMMITTED).SerializeToString(), 4000)
        dt = time.time() - t0
        f.check(rep is not None and outcomes(rep) == [("t1", "OUTCOME_ACCEPTED", "", 0)] and 1.8 < dt < 3.5,
                f"I: timeout answers accepted after {dt:.2f}s")

        # --- J: redrive re-sends t1 while it is not final, then forgets it ---------------
        seen = [internal_pb2.PendingEvent.FromString(m[-1]).provider_event_id
                for m in recv_all(env.verify, 3500)]
        f.check("t1" in seen, f"J: redrive re-sent t1 ({seen})")
        env.redis("HSET", "cp:ev:{PRV-0001:t1}", "state", "committed", "index", "43")
        time.sleep(3.5)
        f.check(env.redis("ZSCORE", "cp:pending", "PRV-0001:t1") == "", "J: final event left cp:pending")
        recv_all(env.verify)

        # --- R: Redis down -> UNAVAILABLE; back (empty, scripts gone) -> served again ------
        env.procs["redis"].send_signal(signal.SIGTERM)
        env.procs["redis"].wait(timeout=10)
        rep = call(c, request([event("r1")]).SerializeToString(), 5000)
        f.check(rep is not None and rep.error_code == "UNAVAILABLE" and len(rep.replies) == 0,
                f"R: Redis down -> UNAVAILABLE ({rep and rep.error_code})")
        env.start_redis()
        rep = call(c, request([event("r1")]).SerializeToString(), 5000)
        f.check(rep is not None and outcomes(rep) == [("r1", "OUTCOME_ACCEPTED", "", 0)],
                "R: Redis back -> accepted again")
        f.check(env.redis("HGET", "cp:ev:{PRV-0001:r1}", "state") == "accepted", "R: r1 stored")
        recv_all(env.verify)

        # --- K: SIGTERM answers a waiting request, exit 0 ----------------------------------
        c.send_multipart([request([event("w1")], ack=E.ACK_LEVEL_COMMITTED, rid="w").SerializeToString()])
        time.sleep(0.3)
        env.procs["intake"].send_signal(signal.SIGTERM)
        rep = E.SubmitReply.FromString(c.recv_multipart()[-1]) if c.poll(3000) else None
        f.check(rep is not None and outcomes(rep) == [("w1", "OUTCOME_ACCEPTED", "", 0)],
                "K: waiting request answered at SIGTERM")
        f.check(env.procs["intake"].wait(timeout=10) == 0, "K: intake exit 0")
        env.procs["bus"].send_signal(signal.SIGTERM)
        f.check(env.procs["bus"].wait(timeout=10) == 0, "K: bus exit 0")
        c.close()

        # --- L/M: health files and logs ----------------------------------------------------
        f.check(os.path.exists(os.path.join(tmp, "health", "intake.health"))
                and os.path.exists(os.path.join(tmp, "health", "bus.health")), "L: heartbeat files")
        env.intake_log.flush()
        with open(env.intake_log_path) as fh:
            lines = [json.loads(ln) for ln in fh if ln.strip()]
        batches = [ln for ln in lines if ln.get("msg") == "batch"]
        f.check(len(batches) >= 10 and all({"provider", "events", "accepted", "rejected", "ms"} <= set(b)
                                           for b in batches), "M: one JSON line per batch")
        with open(env.intake_log_path) as fh:
            text = fh.read()
        f.check(NI_GOOD not in text and NI_BAD not in text and "AB 12" not in text.upper(),
                "M: no NI number in the log")
    finally:
        env.stop()
        if f.failed or os.environ.get("INTAKE_SMOKE_KEEP"):
            print(f"(logs kept in {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main():
    f = Failures()
    run_smoke(f)
    print(f"{f.passed} passed, {len(f.failed)} failed")
    return 1 if f.failed else 0


if __name__ == "__main__":
    sys.exit(main())
