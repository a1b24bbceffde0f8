"""test_notify_subscriptions.py -- employer subscriptions (written into Redis as the
gateway does) get record.revoked after a provider revocation; a receiver that fails
for a while and then recovers gets every delivery exactly once by webhook-id; a slow
endpoint is limited per endpoint and does not hold up others."""

import time

import pytest

from harness import CarepassSystem, event
from notify_subs import subscribe, worker_hex

RECENT = "2025-05-01"
SUB = "sub_" + "1" * 32


def ok(rx, type_=None):
    return [q for q in rx.requests if 200 <= q.answered < 300 and (type_ is None or q.json()["type"] == type_)]


def start_system(tmp_path, provider_rx, **env):
    e = {"CAREPASS_WEBHOOK_BACKOFF_MS": "100", "CAREPASS_WEBHOOK_BACKOFF_MAX_MS": "400"}
    e.update(env)
    return CarepassSystem(tmp_path, providers={"PRV-0001": {"webhook_url": provider_rx.url}}, extra_env=e)


def commit_and_revoke(system, ni="AB123456C", eid="s-1", subscribe_fn=None):
    first = system.submit([event(eid, ni_number=ni, completion_date=RECENT)]).replies[0]
    assert first.outcome == system.pb.OUTCOME_COMMITTED, (first.reason_code, first.message)
    if subscribe_fn:
        subscribe_fn(worker_hex(system), first.entry_index)
    rev = system.submit([event(eid + "-rev", ni_number=ni, completion_date=RECENT, kind="revocation",
                               revokes_event_id=eid, revocation_reason="ISSUED_IN_ERROR")]).replies[0]
    assert rev.outcome == system.pb.OUTCOME_COMMITTED, (rev.reason_code, rev.message)
    return first, rev


def test_revocation_reaches_subscribers_and_worker(tmp_path, receivers):
    provider_rx, employer_rx, worker_rx = receivers(), receivers(), receivers()
    system = start_system(tmp_path, provider_rx)
    good = False
    try:
        pub = (system.keys_dir / "notify.pub").read_text()
        employer_rx.set_public_key(pub)

        def subs(worker, index):
            subscribe(system, SUB, worker, employer_rx.url + "/all")
            subscribe(system, "sub_" + "2" * 32, worker, employer_rx.url + "/scoped", entries=str(index))
            subscribe(system, "sub_" + "3" * 32, worker, employer_rx.url + "/other-entry", entries="999999")
            subscribe(system, "sub_" + "4" * 32, worker, employer_rx.url + "/expiry-only",
                      events="record.expiring,record.expired")
            subscribe(system, "sub_" + "5" * 32, worker, employer_rx.url + "/gone", expires_in_s=-1)
            with system.redis() as r:
                r.cmd("HSET", f"cp:w:{{{worker}}}:profile", "webhook_url", worker_rx.url)

        first, rev = commit_and_revoke(system, subscribe_fn=subs)
        assert employer_rx.wait_for(lambda reqs: len(reqs) >= 2, 15)
        assert worker_rx.wait_for(lambda reqs: len(reqs) >= 1, 15)
        assert provider_rx.wait_for(lambda reqs: any(q.json()["type"] == "record.revoked" for q in reqs), 15)
        time.sleep(0.5)
        got = sorted(q.path for q in ok(employer_rx, "record.revoked"))
        assert got == ["/hook/all", "/hook/scoped"], got
        assert all(employer_rx.verify(q) for q in employer_rx.requests)
        worker = worker_hex(system)
        for q in employer_rx.requests:
            d = q.json()["data"]
            assert d["entry_index"] == first.entry_index and d["reason_code"] == "ISSUED_IN_ERROR"
            assert d["subscription_id"] in (SUB, "sub_" + "2" * 32)
            assert worker.encode() not in q.body
        assert len(ok(worker_rx, "record.revoked")) == 1
        assert "subscription_id" not in worker_rx.requests[0].json()["data"]
        assert len(ok(provider_rx, "record.revoked")) == 1
        with system.redis() as r:
            members = r.cmd("SMEMBERS", f"cp:w:{{{worker}}}:subs")
            assert b"sub_" + b"5" * 32 not in members and len(members) == 4
        good = True
    finally:
        system.stop(show_logs=not good)


def test_failing_receiver_recovers_and_gets_each_once(tmp_path, receivers):
    """The employer's receiver answers 503 for a few seconds (many retries, backoff
    with jitter), then recovers: every webhook arrives exactly once with a 2xx."""
    provider_rx, employer_rx = receivers(), receivers()
    employer_rx.set_status(503)
    system = start_system(tmp_path, provider_rx)
    good = False
    n_subs = 25
    try:
        def subs(worker, index):
            for i in range(n_subs):
                subscribe(system, "sub_%032x" % i, worker, employer_rx.url + "/%d" % i)

        commit_and_revoke(system, subscribe_fn=subs)
        assert employer_rx.wait_for(lambda reqs: len({q.webhook_id for q in reqs}) >= n_subs, 15)
        time.sleep(3)                      # down for a while: several failed attempts each
        failed = len(employer_rx.requests)
        assert failed >= 2 * n_subs
        employer_rx.set_status(200)
        assert employer_rx.wait_for(lambda reqs: len({q.webhook_id for q in reqs
                                                      if q.answered == 200}) >= n_subs, 15)
        time.sleep(1)
        delivered = [q.webhook_id for q in ok(employer_rx)]
        assert len(delivered) == len(set(delivered)) == n_subs
        assert {q.path for q in ok(employer_rx)} == {"/hook/%d" % i for i in range(n_subs)}
        with system.redis() as r:
            assert r.cmd("ZCARD", "cp:nt:due") == 0 and r.cmd("LLEN", "cp:nt:dead") == 0
        good = True
    finally:
        system.stop(show_logs=not good)


def test_slow_endpoint_limited_and_does_not_block_others(tmp_path, receivers):
    """WEBHOOK_PER_ENDPOINT=2 against a receiver that takes 0.5 s: its 6 deliveries
    take >= 1.5 s, while a fast receiver's deliveries arrive at once."""
    provider_rx, slow_rx, fast_rx = receivers(), receivers(delay=0.5), receivers()
    system = start_system(tmp_path, provider_rx, CAREPASS_WEBHOOK_PER_ENDPOINT="2")
    good = False
    try:
        def subs(worker, index):
            for i in range(6):
                subscribe(system, "sub_%032x" % i, worker, slow_rx.url + "/%d" % i)
            for i in range(6, 12):
                subscribe(system, "sub_%032x" % i, worker, fast_rx.url + "/%d" % i)

        commit_and_revoke(system, subscribe_fn=subs)
        t0 = time.monotonic()
        assert fast_rx.wait_for(lambda reqs: len(reqs) >= 6, 10)
        fast_s = time.monotonic() - t0
        assert slow_rx.wait_for(lambda reqs: len(reqs) >= 6, 15)
        slow_s = time.monotonic() - t0
        assert fast_s < 1.0, fast_s
        # 6 deliveries, 2 at a time, 0.5 s each: at least 3 rounds
        arrivals = sorted(q.at for q in slow_rx.requests)
        assert arrivals[-1] - arrivals[0] >= 0.9, arrivals
        assert slow_s >= 1.2, slow_s
        good = True
    finally:
        system.stop(show_logs=not good)


class HangingReceivers:
    """n listening sockets that accept connections and never answer (a receiver that hangs);
    counts the connections each port has accepted."""

    def __init__(self, n):
        import selectors
        import socket
        import threading
        self.sel = selectors.DefaultSelector()
        self.listeners, self.accepted, self.held = [], {}, []
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(64)
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
            self.listeners.append(s)
            self.accepted[s.getsockname()[1]] = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            for key, _ in self.sel.select(timeout=0.1):
                try:
                    c, _ = key.fileobj.accept()
                except BlockingIOError:
                    continue
                self.held.append(c)
                self.accepted[key.fileobj.getsockname()[1]] += 1

    @property
    def urls(self):
        return [f"http://127.0.0.1:{p}/hook" for p in self.accepted]

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        for c in self.held + self.listeners:
            c.close()


def test_hanging_receivers_do_not_delay_one_that_answers(tmp_path, receivers):
    """12 receivers that accept and never answer, 8 notify slots, a 4 s timeout: once they have
    failed, they share at most half the slots, so an honest receiver's next webhook goes out at
    once instead of queueing behind their timeouts (before the fix it waited for them)."""
    provider_rx, honest_rx = receivers(), receivers()
    hang = HangingReceivers(12)
    timeout_s = 4
    system = start_system(tmp_path, provider_rx, CAREPASS_WEBHOOK_CONCURRENCY="8",
                          CAREPASS_WEBHOOK_PER_ENDPOINT="2", CAREPASS_WEBHOOK_TIMEOUT_MS=str(timeout_s * 1000),
                          CAREPASS_WEBHOOK_BREAKER_FAILS="1000")  # the share alone, no parking
    good = False
    try:
        def subs(worker, index):
            for i, url in enumerate(hang.urls):
                subscribe(system, "sub_%032x" % i, worker, url)
            subscribe(system, "sub_%032x" % 99, worker, honest_rx.url + "/honest")

        commit_and_revoke(system, subscribe_fn=subs)
        # round one: every hanging receiver is tried (and times out) and the honest one is served
        assert honest_rx.wait_for(lambda reqs: len(ok(honest_rx, "record.revoked")) >= 1, 60)
        system.wait_for(lambda: all(n >= 1 for n in hang.accepted.values()), timeout=60,
                        what="every hanging receiver tried once")
        time.sleep(timeout_s + 0.5)        # their first attempts have timed out: all known as failing
        # round two: a second record and its revocation fan out to all 13 again
        t0 = time.monotonic()
        commit_and_revoke(system, eid="s-2")
        assert honest_rx.wait_for(lambda reqs: len(ok(honest_rx, "record.revoked")) >= 2, 60)
        waited = time.monotonic() - t0
        # the hanging receivers hold connections meanwhile: the honest one did not wait for them
        assert waited < timeout_s, (waited, hang.accepted)
        assert len(hang.held) >= 12
        good = True
    finally:
        hang.stop()
        system.stop(show_logs=not good)
