"""test_sentinel.py -- Redis high availability with Redis's own Sentinel (issue 14): the services
find the primary through three sentinels (CAREPASS_REDIS_SENTINELS), an accepted ack is given only
once the claim has reached a replica (CAREPASS_REDIS_MIN_REPLICAS=1, WAIT), and when the primary
is killed (SIGKILL) mid-stream, Sentinel promotes the replica, every service follows at its next
reconnect, and not one accepted event is lost: each ends committed, once, in the register.

Real parts only: redis-server as primary, two replicas and three sentinels (`redis-server --sentinel`),
the real services, loopback ports picked here."""

import signal
import subprocess
import time

import pytest

from harness import START_ORDER, CarepassSystem, Resp, event, free_port
from register_check import Register

MASTER = "carepass"
N_BEFORE, N_AFTER = 150, 60


def sentinel_master(port):
    """(host, port) the sentinel on port names as the primary, or None."""
    try:
        with Resp(port, timeout=1) as r:
            rep = r.cmd("SENTINEL", "get-master-addr-by-name", MASTER)
    except OSError:
        return None
    return (rep[0].decode(), int(rep[1])) if isinstance(rep, list) and len(rep) == 2 else None


def start_ha(s, tmp_path):
    """Two replicas of the harness's Redis and three sentinels watching it (two replicas, so that
    after a failover the new primary still has one to acknowledge writes); returns (procs, replica
    ports, sentinel ports)."""
    procs, rports = [], []
    for i in range(2):
        rport = free_port()
        (tmp_path / f"replica-{i}").mkdir()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--dir", str(tmp_path / f"replica-{i}"),
             "--save", "", "--appendonly", "no", "--replicaof", "127.0.0.1", str(s.redis_port),
             "--logfile", str(tmp_path / f"replica-{i}.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        rports.append(rport)
    sports = []
    for i in range(3):
        p = free_port()
        conf = tmp_path / f"sentinel-{i}.conf"
        conf.write_text(f"port {p}\nbind 127.0.0.1\ndir {tmp_path}\n"
                        f"sentinel monitor {MASTER} 127.0.0.1 {s.redis_port} 2\n"
                        f"sentinel down-after-milliseconds {MASTER} 1000\n"
                        f"sentinel failover-timeout {MASTER} 10000\n"
                        f"sentinel parallel-syncs {MASTER} 2\n")
        procs.append(subprocess.Popen(
            ["redis-server", str(conf), "--sentinel", "--logfile", str(tmp_path / f"sentinel-{i}.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        sports.append(p)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        linked = True
        for rport in rports:
            try:
                with Resp(rport, timeout=1) as r:
                    linked = linked and b"master_link_status:up" in r.cmd("INFO", "replication")
            except OSError:
                linked = False
        if linked and all(sentinel_master(p) == ("127.0.0.1", s.redis_port) for p in sports):
            return procs, rports, sports
        time.sleep(0.1)
    raise TimeoutError("replicas and sentinels did not come up")


def submit_until_accepted(s, evs, timeout=40):
    """Submit evs with ack=accepted until every one is accepted (a batch answered unavailable while
    the failover runs is sent again: claims are idempotent)."""
    deadline = time.monotonic() + timeout
    todo = list(evs)
    while todo:
        assert time.monotonic() < deadline, f"{len(todo)} events never accepted"
        try:
            rep = s.submit(todo, ack="accepted", timeout=10)
        except TimeoutError:
            continue
        ok = {r.provider_event_id for r in rep.replies
              if r.outcome in (s.pb.OUTCOME_ACCEPTED, s.pb.OUTCOME_COMMITTED)}
        todo = [e for e in todo if e["provider_event_id"] not in ok]
        if todo:
            time.sleep(0.2)


def test_failover_loses_no_accepted_event(tmp_path):
    procs = []
    s = CarepassSystem(tmp_path / "sys", start=False,
                       extra_env={"CAREPASS_REDRIVE_AFTER_MS": 2000, "CAREPASS_LOG_LEVEL": "info"})
    try:
        s.start_redis()
        procs, rports, sports = start_ha(s, tmp_path)
        s.env.update({"CAREPASS_REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in sports),
                      "CAREPASS_REDIS_MASTER_NAME": MASTER, "CAREPASS_REDIS_MIN_REPLICAS": "1",
                      "CAREPASS_REDIS_REPLICA_TIMEOUT_MS": "1000"})
        s.make_provider_keys()
        s.write_providers()
        for svc in START_ORDER:
            if svc in s.services:
                s.start_service(svc)
                s.wait_healthy(svc)
        s.started = True

        before = [event(f"ha-{i:04d}", ni_number=f"AB{100000 + i:06d}C") for i in range(N_BEFORE)]
        submit_until_accepted(s, before)
        # the primary dies with events accepted but not all committed; Sentinel promotes the replica
        s.kill("redis", signal.SIGKILL)
        def promoted():
            names = {sentinel_master(p) for p in sports}
            return len(names) == 1 and next(iter(names)) in {("127.0.0.1", p) for p in rports}
        s.wait_for(promoted, timeout=30, what="the sentinels to promote a replica")
        rport = sentinel_master(sports[0])[1]
        after = [event(f"ha-{N_BEFORE + i:04d}", ni_number=f"AB{200000 + i:06d}C") for i in range(N_AFTER)]
        submit_until_accepted(s, after)

        ids = [e["provider_event_id"] for e in before + after]

        def states():
            with Resp(rport, timeout=2) as r:
                return [r.hget(f"cp:ev:{{PRV-0001:{i}}}", "state") for i in ids]
        s.wait_for(lambda: all(x == b"committed" for x in states()), timeout=90,
                   what="every accepted event committed after the failover")
        # in the register once each, and the register audits
        reg = Register(s.register_dir)
        assert reg.verify_checkpoint()
        got = [reg.passport_entry(i, s.register_pb).provider_event_id for i in range(reg.size)]
        assert sorted(x for x in got if x.startswith("ha-")) == sorted(ids)
        # the services really moved to the new primary
        with Resp(rport, timeout=2) as r:
            assert b"role:master" in r.cmd("INFO", "replication")
    finally:
        s.stop(show_logs=True)
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=10)
