"""test_notify.py -- the notify service against a real redis-server and a real HTTP receiver.

NotifyJobs go in as producers write them: XADD to the outbox stream cp:{outbox}
(field "j", the packed job); webhooks come out at WebhookReceiver, whose signatures
are checked with the key notify writes to notify.pub.
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from carepass.v1 import internal_pb2
from harness import Resp
from webhook_receiver import WebhookReceiver

BUILD = os.environ.get("CAREPASS_BUILD_DIR", os.path.join(os.getcwd(), "build"))
NOTIFY_BIN = os.path.join(BUILD, "services", "notify", "notify")
OUTBOX = "cp:{outbox}"
MAX_ATTEMPTS = 3
BACKOFF_MS = 50


# --- fixture helpers (self-contained; a shared harness may replace them) -------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Redis:
    """redis-server on a free port, queried through redis-cli."""

    def __init__(self, tmp):
        self.port = free_port()
        self.tmp = tmp
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", self.tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(lambda: self.cli("PING") == "PONG", 10), "redis-server did not start"

    def cli(self, *args):
        try:
            out = subprocess.run(["redis-cli", "-p", str(self.port)] + list(args),
                                 capture_output=True, text=True, timeout=5)
        except subprocess.TimeoutExpired:
            return None
        return out.stdout.strip()

    def lines(self, *args):
        out = self.cli(*args)
        return [l for l in out.splitlines() if l] if out else []

    def hgetall(self, key):
        items = self.lines("HGETALL", key)
        return dict(zip(items[0::2], items[1::2]))

    def stop(self):
        stop_process(self.proc)


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


def delivery_id(type_, provider, event_id, entry_index):
    """Mirror of nt_delivery_id: "msg_" + hex of BLAKE2b-256(...)[:16]."""
    data = (type_.encode() + b"\0" + provider.encode() + b"\0" + event_id.encode() + b"\0"
            + entry_index.to_bytes(8, "big"))
    return "msg_" + hashlib.blake2b(data, digest_size=32).digest()[:16].hex()


def job(type_="record.committed", provider="PRV-0001", event_id="EV-1", index=7, **kw):
    j = internal_pb2.NotifyJob(type=type_, provider_id=provider, provider_event_id=event_id,
                               entry_index=index, qualification_code=kw.pop("code", "CC-STD-01"),
                               worker_pseudonym=b"\x11" * 32,
                               occurred_at=kw.pop("occurred_at", 1795000000000), **kw)
    return j


class Env:
    """redis + receivers + notify; jobs are added to the outbox stream as producers do."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="cp-notify-")
        self.procs = []
        self.logs = []
        self.redis = Redis(self.tmp)
        self.rx = WebhookReceiver().start()
        self.slow = WebhookReceiver(delay=2.0).start()
        self.providers = os.path.join(self.tmp, "providers.json")
        with open(self.providers, "w") as f:
            json.dump({"version": 1, "providers": [
                {"id": "PRV-0001", "name": "Fast Training Ltd", "webhook_url": self.rx.url},
                {"id": "PRV-SLOW", "name": "Slow Training Ltd", "webhook_url": self.slow.url},
                {"id": "PRV-NOURL", "name": "No Hook Ltd", "webhook_url": ""},
            ]}, f)
        self.key = os.path.join(self.tmp, "keys", "notify.key")
        self.pub = os.path.join(self.tmp, "keys", "notify.pub")
        self.notify = self.start_notify()
        assert wait_until(lambda: os.path.exists(self.pub), 10), "notify did not write notify.pub"
        with open(self.pub) as f:
            self.pubkey = f.read().strip()
        self.rx.set_public_key(self.pubkey)
        self.slow.set_public_key(self.pubkey)

    def spawn(self, name, argv, extra):
        env = dict(os.environ)
        env.update({"CAREPASS_LOG_LEVEL": "debug", "CAREPASS_HEALTH_DIR": "",
                    "CAREPASS_WEBHOOK_ALLOW_HOSTS": "127.0.0.0/8,::1,localhost"})
        env.update(extra)
        log = open(os.path.join(self.tmp, "%s.%d.log" % (name, len(self.procs))), "wb")
        self.logs.append(log.name)
        p = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
        log.close()
        self.procs.append(p)
        return p

    def start_notify(self, **extra):
        env = {
            "CAREPASS_REDIS_PORT": str(self.redis.port),
            "CAREPASS_PROVIDERS": self.providers,
            "CAREPASS_NOTIFY_SIGNING_KEY": self.key,
            "CAREPASS_WEBHOOK_BACKOFF_MS": str(BACKOFF_MS),
            "CAREPASS_WEBHOOK_BACKOFF_MAX_MS": "200",
            "CAREPASS_WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
            "CAREPASS_WEBHOOK_TIMEOUT_MS": "3000",
            "CAREPASS_WEBHOOK_CONCURRENCY": "8",
        }
        env.update(extra)
        p = self.spawn("notify", [NOTIFY_BIN], env)
        time.sleep(0.2)
        assert p.poll() is None, "notify exited at start: " + self.log_text()
        return p

    def admin(self, *args):
        """Run "notify dead-list ..." / "notify dead-replay ..." against this Redis."""
        env = dict(os.environ)
        env.update({"CAREPASS_REDIS_PORT": str(self.redis.port), "CAREPASS_HEALTH_DIR": ""})
        return subprocess.run([NOTIFY_BIN] + list(args), env=env, capture_output=True,
                              text=True, timeout=30)

    def send(self, j):
        self.send_raw(j.SerializeToString())

    def send_raw(self, data):
        """XADD one entry, as the claim script, verify and the projection do."""
        with Resp(self.redis.port) as r:
            r.cmd("XADD", OUTBOX, "*", "j", data)

    def outbox_len(self):
        return int(self.redis.cli("XLEN", OUTBOX) or 0)

    def outbox_pending(self):
        out = self.redis.lines("XPENDING", OUTBOX, "notify")
        return int(out[0]) if out else 0

    def log_text(self):
        text = ""
        for name in self.logs:
            with open(name, errors="replace") as f:
                text += f.read()
        return text

    def close(self):
        for p in reversed(self.procs):
            stop_process(p)
        self.rx.stop()
        self.slow.stop()
        self.redis.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def env():
    assert os.access(NOTIFY_BIN, os.X_OK), "build notify first: " + NOTIFY_BIN
    e = Env()
    yield e
    e.close()


@pytest.fixture(autouse=True)
def clean_receiver(env):
    env.rx.clear()
    env.rx.set_status(200)
    env.rx.fail_next(0)
    yield


def requests_for(rx, wid):
    return [r for r in rx.requests if r.webhook_id == wid]


# --- tests ---------------------------------------------------------------------

def test_public_key_file(env):
    assert env.pubkey.startswith("whpk_")
    assert len(base64.b64decode(env.pubkey[5:])) == 32
    assert oct(os.stat(env.key).st_mode & 0o777) == "0o600"


def test_delivery_is_signed_and_has_no_personal_data(env):
    j = job(event_id="EV-SIGNED", index=11)
    env.send(j)
    wid = delivery_id("record.committed", "PRV-0001", "EV-SIGNED", 11)
    assert env.rx.wait_for(lambda reqs: requests_for(env.rx, wid), 10), env.log_text()
    r = requests_for(env.rx, wid)[0]
    assert r.path == "/hook"
    assert env.rx.verify(r)
    assert r.headers["webhook-signature"].startswith("v1a,")
    assert r.headers["content-type"] == "application/json"
    assert r.headers["user-agent"] == "carepass-notify"
    assert abs(int(r.headers["webhook-timestamp"]) - time.time()) < 60
    body = r.json()
    assert body["type"] == "record.committed"
    assert body["timestamp"].endswith("Z") and body["timestamp"].startswith("2026-11-18T")
    assert body["data"] == {"provider_id": "PRV-0001", "provider_event_id": "EV-SIGNED",
                            "reason_code": "", "message": "", "entry_index": 11,
                            "qualification_code": "CC-STD-01"}
    assert b"pseudonym" not in r.body and "11" * 32 not in r.body.decode()
    # a tampered body does not verify
    r.body = r.body.replace(b"EV-SIGNED", b"EV-FORGED")
    assert not env.rx.verify(r)
    # delivered: out of the schedule, remembered as a tombstone
    assert wait_until(lambda: env.redis.hgetall("cp:nt:d:{%s}" % wid).get("state") == "delivered", 5)
    assert env.redis.cli("ZSCORE", "cp:nt:due", wid) == ""


def test_retry_after_failure_uses_same_id(env):
    env.rx.fail_next(2, status=500)
    env.send(job(type_="event.rejected", event_id="EV-RETRY", index=0,
                 reason_code="UNKNOWN_QUALIFICATION", message="not in the catalogue"))
    wid = delivery_id("event.rejected", "PRV-0001", "EV-RETRY", 0)
    assert env.rx.wait_for(lambda reqs: len(requests_for(env.rx, wid)) >= 3, 10), env.log_text()
    reqs = requests_for(env.rx, wid)
    assert [r.answered for r in reqs] == [500, 500, 200]
    assert all(env.rx.verify(r) for r in reqs)
    assert len({r.body for r in reqs}) == 1          # same body, re-signed each attempt
    assert reqs[0].json()["data"]["reason_code"] == "UNKNOWN_QUALIFICATION"
    # backoff: attempts are spaced (50 ms +-20%, then 100 ms +-20%)
    assert reqs[1].at - reqs[0].at >= 0.035
    assert reqs[2].at - reqs[1].at >= 0.075
    assert wait_until(lambda: env.redis.hgetall("cp:nt:d:{%s}" % wid).get("state") == "delivered", 5)


def test_duplicate_job_gives_one_delivery(env):
    j = job(type_="event.accepted", event_id="EV-DUP", index=0)
    env.send(j)
    env.send(j)
    wid = delivery_id("event.accepted", "PRV-0001", "EV-DUP", 0)
    assert env.rx.wait_for(lambda reqs: requests_for(env.rx, wid), 10), env.log_text()
    time.sleep(0.5)
    env.send(j)                                      # a late duplicate after delivery
    time.sleep(0.7)
    assert len(requests_for(env.rx, wid)) == 1
    assert len({r.webhook_id for r in env.rx.requests}) == len(env.rx.requests) == 1
    assert "duplicate job" in env.log_text()


def test_dead_letter_after_max_attempts(env):
    env.rx.set_status(500)
    env.send(job(type_="record.revoked", event_id="EV-DEAD", index=3, reason_code="ISSUED_IN_ERROR"))
    wid = delivery_id("record.revoked", "PRV-0001", "EV-DEAD", 3)
    assert env.rx.wait_for(lambda reqs: len(requests_for(env.rx, wid)) >= MAX_ATTEMPTS, 10), env.log_text()
    assert wait_until(lambda: wid in env.redis.lines("LRANGE", "cp:nt:dead", "0", "-1"), 5)
    h = env.redis.hgetall("cp:nt:d:{%s}" % wid)
    assert h["state"] == "dead" and h["attempts"] == str(MAX_ATTEMPTS) and h["last_status"] == "500"
    assert env.redis.cli("ZSCORE", "cp:nt:due", wid) == ""
    time.sleep(0.5)
    assert len(requests_for(env.rx, wid)) == MAX_ATTEMPTS   # no more tries once dead


def test_dead_letters_list_and_replay(env):
    wid = delivery_id("record.revoked", "PRV-0001", "EV-DEAD", 3)   # from the test above
    out = env.admin("dead-list")
    assert out.returncode == 0, out.stderr
    dead = [json.loads(l) for l in out.stdout.splitlines()]
    mine = [d for d in dead if d["id"] == wid]
    assert len(mine) == 1
    assert mine[0]["type"] == "record.revoked" and mine[0]["provider"] == "PRV-0001"
    assert mine[0]["attempts"] == MAX_ATTEMPTS and mine[0]["last_status"] == 500
    assert mine[0]["url"] == env.rx.url and mine[0]["dead_at_ms"] >= mine[0]["created_ms"] > 0

    bad = env.admin("dead-replay", "msg_00000000000000000000000000000000")
    assert bad.returncode == 1 and "not in the dead-letter list" in bad.stderr
    assert env.admin("dead-list", "zero").returncode == 2

    out = env.admin("dead-replay", wid)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"replayed": 1}
    assert env.rx.wait_for(lambda reqs: requests_for(env.rx, wid), 10), env.log_text()
    r = requests_for(env.rx, wid)[0]
    assert r.answered == 200 and env.rx.verify(r)
    assert wait_until(lambda: env.redis.hgetall("cp:nt:d:{%s}" % wid).get("state") == "delivered", 5)
    assert wid not in env.redis.lines("LRANGE", "cp:nt:dead", "0", "-1")


def test_replay_all_dead_letters(env):
    env.rx.set_status(503)
    ids = []
    for i in range(3):
        env.send(job(type_="record.committed", event_id="EV-DEAD-ALL-%d" % i, index=100 + i))
        ids.append(delivery_id("record.committed", "PRV-0001", "EV-DEAD-ALL-%d" % i, 100 + i))
    assert wait_until(lambda: set(ids) <= set(env.redis.lines("LRANGE", "cp:nt:dead", "0", "-1")), 10), \
        env.log_text()
    env.rx.set_status(200)
    env.rx.clear()
    out = env.admin("dead-replay", "--all")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["replayed"] >= 3
    assert env.rx.wait_for(lambda reqs: set(ids) <= {r.webhook_id for r in reqs}, 10)
    assert env.redis.cli("LLEN", "cp:nt:dead") == "0"


def test_provider_without_url_is_not_delivered(env):
    env.send(job(provider="PRV-NOURL", event_id="EV-NOURL"))
    env.send(job(provider="PRV-UNKNOWN", event_id="EV-UNKNOWN"))
    assert wait_until(lambda: env.log_text().count("no webhook target") >= 2, 5)
    assert env.rx.requests == []


def test_bad_job_is_dropped_not_fatal(env):
    env.send_raw(b"\xff\xff\xff not a protobuf")
    with Resp(env.redis.port) as r:                  # an entry without the job field
        r.cmd("XADD", OUTBOX, "*", "x", "1")
    env.send(job(type_="Bad Type!", event_id="EV-BAD"))
    env.send(job(event_id="EV-AFTER-BAD"))
    wid = delivery_id("record.committed", "PRV-0001", "EV-AFTER-BAD", 7)
    assert env.rx.wait_for(lambda reqs: requests_for(env.rx, wid), 10), env.log_text()
    assert env.log_text().count("bad outbox entry dropped") >= 3
    assert env.notify.poll() is None
    # bad entries are acknowledged and deleted like good ones: nothing stays behind
    assert wait_until(lambda: env.outbox_len() == 0 and env.outbox_pending() == 0, 5)


def test_jobs_written_while_notify_is_stopped_are_delivered(env):
    """The outbox holds what producers wrote while no notify ran; nothing is lost."""
    env.notify.send_signal(signal.SIGSTOP)
    try:
        ids = []
        for i in range(20):
            env.send(job(event_id="EV-STOPPED-%d" % i, index=200 + i))
            ids.append(delivery_id("record.committed", "PRV-0001", "EV-STOPPED-%d" % i, 200 + i))
        time.sleep(0.3)
        assert env.outbox_len() == 20 and env.rx.requests == []
    finally:
        env.notify.send_signal(signal.SIGCONT)
    assert env.rx.wait_for(lambda reqs: set(ids) <= {r.webhook_id for r in reqs}, 10), env.log_text()
    assert sorted(r.webhook_id for r in env.rx.requests) == sorted(ids)
    assert wait_until(lambda: env.outbox_len() == 0 and env.outbox_pending() == 0, 5)


def test_notify_killed_before_storing_rereads_its_entries(env):
    """Entries a replica read but had not stored when killed are read again, not lost."""
    # SIGSTOP after notify has read nothing; add jobs; the kill lands at a random point
    # in read/store; a new replica (new consumer name) must take over via XAUTOCLAIM or
    # the stream's unread tail, so every job is delivered.
    victim = env.start_notify(CAREPASS_NOTIFY_OUTBOX_LEASE_MS="1000")
    stop_process(env.notify, signal.SIGTERM)
    ids = []
    for i in range(200):
        env.send(job(type_="event.accepted", event_id="EV-KILLED-%d" % i, index=0))
        ids.append(delivery_id("event.accepted", "PRV-0001", "EV-KILLED-%d" % i, 0))
    victim.kill()
    victim.wait(timeout=5)
    env.notify = env.start_notify(CAREPASS_NOTIFY_OUTBOX_LEASE_MS="1000")
    assert env.rx.wait_for(lambda reqs: set(ids) <= {r.webhook_id for r in reqs}, 20), env.log_text()
    assert wait_until(lambda: env.outbox_len() == 0 and env.outbox_pending() == 0, 10)
    stop_process(env.notify)
    env.notify = env.start_notify()


def test_slow_receiver_does_not_block_others(env):
    env.slow.clear()
    env.send(job(provider="PRV-SLOW", event_id="EV-SLOW"))
    time.sleep(0.2)
    t0 = time.monotonic()
    env.send(job(event_id="EV-FAST"))
    wid = delivery_id("record.committed", "PRV-0001", "EV-FAST", 7)
    assert env.rx.wait_for(lambda reqs: requests_for(env.rx, wid), 10)
    assert time.monotonic() - t0 < 1.5                  # the slow one takes 2 s
    assert env.slow.wait_for(lambda reqs: len(reqs) == 1, 10)
    assert env.slow.verify(env.slow.requests[0])


def test_two_replicas_deliver_each_once(env):
    second = env.start_notify()
    try:
        ids = []
        for i in range(40):
            env.send(job(type_="event.accepted", event_id="EV-PAIR-%d" % i, index=0))
            ids.append(delivery_id("event.accepted", "PRV-0001", "EV-PAIR-%d" % i, 0))
        assert env.rx.wait_for(lambda reqs: set(ids) <= {r.webhook_id for r in reqs}, 15)
        time.sleep(0.5)
        got = [r.webhook_id for r in env.rx.requests]
        assert sorted(got) == sorted(ids)            # each exactly once
        assert all(env.rx.verify(r) for r in env.rx.requests)
    finally:
        assert stop_process(second) == 0


def test_killed_replica_delivery_comes_back(env):
    """A notify killed mid-delivery loses nothing: the lease hands the delivery to another replica."""
    env.slow.clear()
    env.slow.set_delay(1.5)
    # a second replica with a short timeout, so its lease (2*timeout+5s) is short
    second = env.start_notify(CAREPASS_WEBHOOK_TIMEOUT_MS="1000")
    stop_process(env.notify, signal.SIGTERM)          # only the second replica runs now
    wid = delivery_id("record.committed", "PRV-SLOW", "EV-CRASH", 7)
    env.send(job(provider="PRV-SLOW", event_id="EV-CRASH"))
    assert wait_until(lambda: env.redis.hgetall("cp:nt:d:{%s}" % wid).get("attempts") == "1", 5)
    second.kill()                                     # SIGKILL while the request is in flight
    second.wait(timeout=5)
    env.slow.set_delay(0)
    env.notify = env.start_notify()
    # the lease (7 s) expires and the new replica delivers the same webhook-id
    assert env.slow.wait_for(lambda reqs: any(r.webhook_id == wid and r.answered == 200
                                              and r.at > time.time() - 30 for r in reqs)
                             and len([r for r in reqs if r.webhook_id == wid]) >= 2, 20), env.log_text()
    assert wait_until(lambda: env.redis.hgetall("cp:nt:d:{%s}" % wid).get("state") == "delivered", 5)


def test_redis_outage_delays_but_does_not_drop(env):
    """An entry written before Redis went down is delivered once Redis is back on its data."""
    env.notify.send_signal(signal.SIGSTOP)           # the entry waits unread in the stream
    try:
        env.send(job(event_id="EV-OUTAGE"))
        env.redis.stop()                             # SIGTERM: the AOF keeps the entry
    finally:
        env.notify.send_signal(signal.SIGCONT)
    wid = delivery_id("record.committed", "PRV-0001", "EV-OUTAGE", 7)
    assert wait_until(lambda: "redis error" in env.log_text(), 10)
    assert env.rx.requests == []
    env.redis.start()
    assert env.rx.wait_for(lambda reqs: requests_for(env.rx, wid), 15), env.log_text()
    assert env.rx.verify(requests_for(env.rx, wid)[0])
    assert env.notify.poll() is None


def test_outbox_group_made_again_when_redis_lost_it(env):
    """A Redis that lost the stream (NOGROUP): notify makes the group again and goes on."""
    assert wait_until(lambda: env.outbox_len() == 0, 5)
    env.redis.cli("DEL", OUTBOX)
    env.send(job(event_id="EV-NOGROUP"))
    wid = delivery_id("record.committed", "PRV-0001", "EV-NOGROUP", 7)
    assert env.rx.wait_for(lambda reqs: requests_for(env.rx, wid), 15), env.log_text()
    assert "NOGROUP" in env.log_text()
    assert wait_until(lambda: env.outbox_len() == 0 and env.outbox_pending() == 0, 5)


def test_sigterm_finishes_in_flight_delivery(env):
    env.slow.clear()
    env.slow.set_delay(1.0)
    wid = delivery_id("record.committed", "PRV-SLOW", "EV-TERM", 7)
    env.send(job(provider="PRV-SLOW", event_id="EV-TERM"))
    assert wait_until(lambda: env.redis.hgetall("cp:nt:d:{%s}" % wid).get("attempts") == "1", 5)
    t0 = time.monotonic()
    assert stop_process(env.notify, signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - t0 < 6
    assert "notify stopped" in env.log_text()
    assert env.redis.hgetall("cp:nt:d:{%s}" % wid).get("state") == "delivered"
    assert [r.webhook_id for r in env.slow.requests] == [wid]
    env.slow.set_delay(0)
    env.notify = env.start_notify()
