"""test_notify_expiry.py -- record.expiring (90/30/7 days before valid_until) and
record.expired (the day after) reach the provider and a subscribed employer exactly
once, driven by the test-settable clock (CAREPASS_TODAY_FILE), not by sleeping.

The employer subscription is written straight into Redis, as the gateway would
(format: services/notify/notify_keys.h)."""

import datetime
import time

import pytest

from harness import CarepassSystem, event
from notify_subs import subscribe, worker_hex

START = datetime.date(2025, 6, 1)      # the clock when the record is committed
COMPLETED = "2025-05-01"               # RF-FIRE: valid for 12 months


def set_today(path, day):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(day.isoformat() + "\n")
    tmp.replace(path)


def bodies(rx):
    """Every 2xx-answered request as (webhook-id, parsed body)."""
    return [(q.webhook_id, q.json()) for q in rx.requests if 200 <= q.answered < 300]


def expiry_events(rx):
    return sorted((b["type"], b["data"].get("days_before", 0)) for _, b in bodies(rx)
                  if b["type"] in ("record.expiring", "record.expired"))


@pytest.fixture
def env(tmp_path, receivers):
    today = tmp_path / "today"
    set_today(today, START)
    provider_rx, employer_rx = receivers(), receivers()
    s = CarepassSystem(tmp_path / "sys", providers={"PRV-0001": {"webhook_url": provider_rx.url}},
                       extra_env={"CAREPASS_TODAY_FILE": str(today), "CAREPASS_EXPIRY_SCAN_MS": "100",
                                  "CAREPASS_WEBHOOK_BACKOFF_MS": "100"})
    ok = False
    try:
        pub = (s.keys_dir / "notify.pub").read_text()
        provider_rx.set_public_key(pub)
        employer_rx.set_public_key(pub)
        yield s, today, provider_rx, employer_rx
        ok = True
    finally:
        s.stop(show_logs=not ok)


def settle(rx, n, timeout=10.0):
    """Wait until rx has n 2xx-answered expiry webhooks; then a little more, to catch extras."""
    assert rx.wait_for(lambda reqs: len([q for q in reqs if 200 <= q.answered < 300 and
                                         q.json()["type"].startswith("record.exp")]) >= n, timeout), \
        expiry_events(rx)
    time.sleep(0.6)   # several scan periods: anything sent twice would show up now


def test_expiry_thresholds_exactly_once(env):
    system, today, provider_rx, employer_rx = env
    rep = system.submit([event("exp-1", ni_number="AB123456C", completion_date=COMPLETED)]).replies[0]
    assert rep.outcome == system.pb.OUTCOME_COMMITTED, (rep.reason_code, rep.message)
    idx = rep.entry_index
    worker = worker_hex(system)
    subscribe(system, "sub_" + "a" * 32, worker, employer_rx.url + "/employer")
    # a subscription that has expired gets nothing and is cleaned up
    subscribe(system, "sub_" + "b" * 32, worker, employer_rx.url + "/expired", expires_in_s=-10)

    key = f"cp:exp:{{{idx}}}"
    h = system.wait_for(lambda: system.redis().hgetall(key), what="expiry schedule")
    assert h["state"] == b"scheduled" and h["stage"] == b"0"
    vu = datetime.date.fromisoformat(h["valid_until"].decode())
    assert vu == datetime.date(2026, 5, 1)

    # one day before the 90-day threshold: nothing
    set_today(today, vu - datetime.timedelta(days=91))
    time.sleep(0.6)
    assert expiry_events(employer_rx) == []

    set_today(today, vu - datetime.timedelta(days=90))
    settle(employer_rx, 1)
    assert expiry_events(employer_rx) == [("record.expiring", 90)]
    # back and forth inside the same stage: nothing new
    set_today(today, vu - datetime.timedelta(days=120))
    time.sleep(0.5)
    set_today(today, vu - datetime.timedelta(days=60))
    time.sleep(0.5)
    assert expiry_events(employer_rx) == [("record.expiring", 90)]

    set_today(today, vu - datetime.timedelta(days=30))
    settle(employer_rx, 2)
    # a restarted notify sends nothing again
    system.restart("notify")
    time.sleep(0.6)
    assert expiry_events(employer_rx) == [("record.expiring", 30), ("record.expiring", 90)]

    set_today(today, vu - datetime.timedelta(days=7))
    settle(employer_rx, 3)
    set_today(today, vu)                       # valid until the end of that day
    time.sleep(0.5)
    assert ("record.expired", 0) not in expiry_events(employer_rx)
    set_today(today, vu + datetime.timedelta(days=1))
    settle(employer_rx, 4)
    # the clock going back to before every threshold and forward again sends nothing new
    set_today(today, START)
    time.sleep(0.5)
    set_today(today, vu + datetime.timedelta(days=400))
    system.restart("notify")
    time.sleep(0.8)

    want = [("record.expired", 0), ("record.expiring", 7), ("record.expiring", 30), ("record.expiring", 90)]
    assert expiry_events(employer_rx) == want
    assert expiry_events(provider_rx) == want
    # exactly once by webhook-id, all signed, and ids differ per threshold
    for rx in (employer_rx, provider_rx):
        ids = [wid for wid, b in bodies(rx) if b["type"].startswith("record.exp")]
        assert len(ids) == len(set(ids)) == 4
        assert all(rx.verify(q) for q in rx.requests)
    # the employer knows the worker only by the subscription id; nobody gets the pseudonym
    for q in employer_rx.requests:
        assert q.path == "/hook/employer"
        assert q.json()["data"]["subscription_id"] == "sub_" + "a" * 32
        assert worker.encode() not in q.body
    for q in provider_rx.requests:
        assert "subscription_id" not in q.json()["data"] and worker.encode() not in q.body
    d = dict(bodies(employer_rx))
    one = next(b for b in d.values() if b["type"] == "record.expired")["data"]
    assert one["entry_index"] == idx and one["valid_until"] == vu.isoformat()
    assert one["qualification_code"] == "RF-FIRE" and one["provider_id"] == "PRV-0001"
    # the expired subscription was removed; the schedule is finished
    with system.redis() as r:
        assert r.cmd("SMEMBERS", f"cp:w:{{{worker}}}:subs") == [b"sub_" + b"a" * 32]
        assert r.hget(key, "state") == b"done"
        assert r.cmd("ZSCORE", "cp:exp:due", str(idx)) is None


def test_late_start_sends_only_the_latest_threshold(env):
    """A notify that was down past several thresholds sends the latest one only."""
    system, today, provider_rx, employer_rx = env
    rep = system.submit([event("exp-2", ni_number="AB123456C", completion_date=COMPLETED)]).replies[0]
    assert rep.outcome == system.pb.OUTCOME_COMMITTED, (rep.reason_code, rep.message)
    worker = worker_hex(system)
    subscribe(system, "sub_" + "c" * 32, worker, employer_rx.url)
    system.wait_for(lambda: system.redis().hget(f"cp:exp:{{{rep.entry_index}}}", "state"), what="schedule")
    system.kill("notify")
    set_today(today, datetime.date(2026, 4, 27))     # past 90, 30 and 7 days before 2026-05-01
    system.start_service("notify")
    system.wait_healthy("notify")
    settle(employer_rx, 1)
    assert expiry_events(employer_rx) == [("record.expiring", 7)]


def test_revoked_record_is_unscheduled(env):
    system, today, provider_rx, employer_rx = env
    rep = system.submit([event("exp-3", ni_number="AB123456C", completion_date=COMPLETED)]).replies[0]
    assert rep.outcome == system.pb.OUTCOME_COMMITTED
    key = f"cp:exp:{{{rep.entry_index}}}"
    system.wait_for(lambda: system.redis().hget(key, "state") == b"scheduled", what="schedule")
    rev = system.submit([event("exp-3-rev", ni_number="AB123456C", completion_date=COMPLETED,
                               kind="revocation", revokes_event_id="exp-3",
                               revocation_reason="ISSUED_IN_ERROR")]).replies[0]
    assert rev.outcome == system.pb.OUTCOME_COMMITTED, (rev.reason_code, rev.message)
    system.wait_for(lambda: system.redis().hget(key, "state") == b"revoked", what="revoked schedule")
    set_today(today, datetime.date(2026, 6, 1))
    time.sleep(0.8)
    assert expiry_events(provider_rx) == []
