"""test_outbox.py -- the notification outbox (cp:{outbox}) against a running system.

Producers (intake's claim script here) write a notice in the same atomic step as the state
change; notify reads the stream in consumer group "notify", stores the deliveries and
acknowledges in one MULTI. These tests play what a fault would do, deterministically:

  * a replica that read entries and died (a consumer of the group that never acknowledges):
    a live notify takes its entries over after CAREPASS_NOTIFY_OUTBOX_LEASE_MS, delivers
    each once, and forgets the dead consumer once it holds nothing;
  * notify stopped while providers go on: the outbox grows to CAREPASS_OUTBOX_MAX, intake
    then answers BUSY (nothing stored, so a resend is taken in later), and /metrics shows
    the length, the age of the oldest entry and the consumers;
  * the backlog drains once notify runs again, and every notice owed is delivered once.
"""

import http.client
import signal
import time

import pytest

from harness import CarepassSystem, event

OUTBOX = "cp:{outbox}"
GROUP = "notify"
LEASE_MS = 1000


def metrics(system):
    conn = http.client.HTTPConnection("127.0.0.1", system.metrics_port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        assert r.status == 200
        text = r.read().decode()
    finally:
        conn.close()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def consumers(r):
    """{consumer name: pending count} of the outbox's group."""
    out = {}
    for c in r.cmd("XINFO", "CONSUMERS", OUTBOX, GROUP) or []:
        kv = dict(zip(c[0::2], c[1::2]))
        out[kv[b"name"].decode()] = kv[b"pending"]
    return out


def accepted_ids(rx):
    return [q.webhook_id for q in rx.requests if q.json()["type"] == "event.accepted"]


def test_entries_of_a_dead_replica_are_taken_over_and_it_is_forgotten(tmp_path, receivers):
    rx = receivers()
    with CarepassSystem(tmp_path, services=("bus", "intake", "notify"),
                        providers={"PRV-0001": {"webhook_url": rx.url}},
                        extra_env={"CAREPASS_NOTIFY_OUTBOX_LEASE_MS": str(LEASE_MS)}) as system:
        try:
            dead_replica_case(system, rx)
        except BaseException:
            system.stop(show_logs=True)
            raise


def dead_replica_case(system, rx):
    with system.redis() as r:
        system.wait_for(lambda: GROUP.encode() in [g[1] for g in r.cmd("XINFO", "GROUPS", OUTBOX) or []],
                        what="notify's consumer group")
        # a "replica" that reads what arrives and dies before storing it
        system.kill("notify", signal.SIGSTOP)
        try:
            rep = system.submit([event("dead-%d" % i) for i in range(30)], ack="accepted")
            assert all(x.outcome == system.pb.OUTCOME_ACCEPTED for x in rep.replies)
            got = r.cmd("XREADGROUP", "GROUP", GROUP, "ghost-1", "COUNT", "100", "STREAMS", OUTBOX, ">")
            assert got is not None and len(got[0][1]) == 30
            assert consumers(r)["ghost-1"] == 30
        finally:
            system.kill("notify", signal.SIGCONT)
        # the live replica waits for the lease, then takes the 30 over and stores them
        system.wait_for(lambda: int(r.cmd("XLEN", OUTBOX)) == 0, timeout=20, what="outbox drained")
        assert "outbox entries of a silent replica taken over" in system.log_text("notify")
        # the ghost holds nothing now and is forgotten after ten leases of silence
        system.wait_for(lambda: "ghost-1" not in consumers(r), timeout=30, what="ghost forgotten")
        assert "outbox consumers of gone replicas forgotten" in system.log_text("notify")
        assert len(consumers(r)) == 1                 # the live replica only
        # each of the 30 notices became exactly one delivery, delivered once
        assert len(r.keys("cp:nt:d:*")) == 30
        rx.wait_for(lambda reqs: len(accepted_ids(rx)) >= 30, 10)
        time.sleep(0.3)
        assert len(accepted_ids(rx)) == len(set(accepted_ids(rx))) == 30


@pytest.mark.carepass(services=("bus", "intake", "notify", "gateway"),
                      extra_env={"CAREPASS_OUTBOX_MAX": "100"})
def test_full_outbox_answers_busy_and_drains(system):
    with system.redis() as r:
        system.wait_for(lambda: r.cmd("EXISTS", OUTBOX) == 1, what="notify's consumer group")
        system.kill("notify", signal.SIGSTOP)
        try:
            rep = system.submit([event("full-%d" % i) for i in range(100)], ack="accepted")
            assert [x.outcome for x in rep.replies] == [system.pb.OUTCOME_ACCEPTED] * 100
            assert int(r.cmd("XLEN", OUTBOX)) == 100
            time.sleep(1.1)                           # the oldest entry is at least a second old
            m = metrics(system)
            assert m["carepass_outbox_length"] == 100
            assert m["carepass_outbox_oldest_age_seconds"] >= 1
            assert m["carepass_outbox_consumers"] == 1
            # at the bound: not stored, BUSY with a sentence, and nothing written
            rep = system.submit([event("over-%d" % i) for i in range(5)], ack="accepted")
            assert [x.outcome for x in rep.replies] == [system.pb.OUTCOME_REJECTED] * 5
            assert {x.reason_code for x in rep.replies} == {"BUSY"}
            assert "send it again" in rep.replies[0].message
            assert r.cmd("EXISTS", "cp:ev:{PRV-0001:over-0}") == 0
            assert int(r.cmd("XLEN", OUTBOX)) == 100
            # a resend of an event already stored is answered as before, not BUSY
            rep = system.submit([event("full-0")], ack="accepted")
            assert rep.replies[0].outcome == system.pb.OUTCOME_ACCEPTED
        finally:
            system.kill("notify", signal.SIGCONT)
        system.wait_for(lambda: int(r.cmd("XLEN", OUTBOX)) == 0, timeout=20, what="outbox drained")
        system.wait_for(lambda: metrics(system)["carepass_outbox_length"] == 0, what="gauge back to 0")
        assert metrics(system)["carepass_outbox_oldest_age_seconds"] == 0
        # room again: the refused events are taken in when sent again
        rep = system.submit([event("over-%d" % i) for i in range(5)], ack="accepted")
        assert [x.outcome for x in rep.replies] == [system.pb.OUTCOME_ACCEPTED] * 5
