"""test_reindex_every_key.py -- one projection from the register to Redis: after a varied run
(provider records and revocations, a Care Certificate, its withdrawal by a revoked standard and
its re-issue, an operator revocation, a standard revoked before its award, a key rotation) every
Redis key and value is read (by type, not DUMP), Redis is flushed, `carepass reindex` replays the
register, and every key and value is read again and compared with the state before -- all of
them, except what the register cannot hold (NOT_REBUILT below, each with the reason)."""

import re
import signal

import pytest

from award_helpers import award_id, award_key, awards, certify, committed, pseudonym_of, revocations_of
from harness import event
from test_audit_reindex import submit_samples

NI = "JG103759A"     # the certified worker
NI2 = "AB123456C"    # a worker whose standard is revoked before the set completes

# Keys and fields live Redis holds that no register entry carries, so reindex cannot rebuild them:
NOT_REBUILT_KEYS = [
    # notify's webhook deliveries, their retry schedule and dead letters: transient delivery
    # state of notifications (kept until delivered or replayed), not register state
    re.compile(r"^cp:nt:"),
    # the expiry scan's leases (unix ms a notify replica holds a record until): notify's
    # in-flight work, not register state
    re.compile(r"^cp:exp:lease$"),
    # the notification outbox: notices owed and not yet stored by notify (written with the state
    # change that made them owed, acknowledged and deleted once stored); a replay owes none
    # (reindex does not notify), so it is not rebuilt
    re.compile(r"^cp:\{outbox\}$"),
    # the gateway's note of a worker's consent requests (consent id -> employer), kept so a
    # consent is listed while pending; the committed consent is the projection's cp:cn:{id}
    re.compile(r"^cp:w:\{[0-9a-f]{64}\}:cn_req$"),
]
# The expiry schedule is the projection's (created with the commit from the record's valid_until,
# retired to a "revoked" tombstone by a revocation), so reindex rebuilds it, except what notify
# writes as it sends the expiring/expired notices, which the register does not record:
EXP_SCHEDULE = re.compile(r"^cp:exp:\{\d+\}$")
# a schedule's stage (the next threshold: notify moves it on after each notice it sent)
NOT_REBUILT_EXP_FIELDS = {"stage"}
# a finished schedule (state "done": every notice sent; a replay schedules nothing for a record
# whose every threshold has passed) is notify's alone
EXP_DONE = b"done"
# cp:exp:due is compared by its members only: a member's score is the day of its stage's threshold,
# which moves with the stage
EXP_DUE = "cp:exp:due"
NOT_REBUILT_EVENT_FIELDS = {
    # unix ms at which intake accepted the event: intake's clock; the register holds the signer's
    # issued_at (seconds) instead
    "t",
    # on a derived award's event: the cp:ev key of the standard that completed the set, which
    # verify uses only to redrive the award while it is pending (verify_awards_redrive); the
    # award entry does not name it
    "src",
}


def rejected_event(key, value):
    """A rejected event never reaches the register ("Rejected events are not in the register
    and are not restored", carepass reindex --help)."""
    return key.startswith("cp:ev:") and value.get("state") == b"rejected"


def read_every_key(system):
    """{key: (type, value)} for every key in Redis, read by its type."""
    out = {}
    with system.redis() as r:
        for k in sorted(r.keys("*")):
            t = r.cmd("TYPE", k)
            t = t.decode() if isinstance(t, bytes) else t
            if t == "string":
                v = r.get(k)
            elif t == "hash":
                v = r.hgetall(k)
            elif t == "list":
                v = list(r.lrange(k))
            elif t == "set":
                v = sorted(r.cmd("SMEMBERS", k))
            elif t == "stream":
                v = [e[0] for e in (r.cmd("XRANGE", k, "-", "+") or [])]
            elif t == "zset":
                z = r.cmd("ZRANGE", k, 0, -1, "WITHSCORES") or []
                v = sorted((z[i], z[i + 1]) for i in range(0, len(z), 2))
            else:
                raise AssertionError(f"{k}: unexpected type {t}")
            out[k] = (t, v)
    return out


def rebuildable(snapshot):
    keep = {}
    for k, (t, v) in snapshot.items():
        if any(p.search(k) for p in NOT_REBUILT_KEYS):
            continue
        if t == "hash" and rejected_event(k, v):
            continue
        if t == "hash" and k.startswith("cp:ev:"):
            v = {f: x for f, x in v.items() if f not in NOT_REBUILT_EVENT_FIELDS}
        if t == "hash" and EXP_SCHEDULE.search(k):
            if v.get("state") == EXP_DONE:
                continue
            v = {f: x for f, x in v.items() if f not in NOT_REBUILT_EXP_FIELDS}
        if t == "zset" and k == EXP_DUE:
            v = sorted(m for m, _ in v)
        keep[k] = (t, v)
    return keep


def exp_progress(k):
    """A key whose value rebuildable() reduces to what the projection writes (notify's progress
    taken out)."""
    return k == EXP_DUE or bool(EXP_SCHEDULE.search(k))


def diff(before, after):
    lines = []
    for k in sorted(set(before) | set(after)):
        if before.get(k) != after.get(k):
            lines.append(f"{k}\n   live:    {before.get(k)}\n   reindex: {after.get(k)}")
    return "\n".join(lines)


def standard(i, eid=None, ni=NI):
    return event(eid or f"rk-{i:02d}", ni_number=ni, qualification_code=f"CC-STD-{i:02d}",
                 completion_date="2025-02-01", assessor_id="ASR-1")


def revoke(eid, target, code, ni=NI):
    return event(eid, ni_number=ni, qualification_code=code, completion_date="2025-02-01",
                 kind="revocation", revokes_event_id=target, revocation_reason="ISSUED_IN_ERROR")


def varied_run(system):
    submit_samples(system)   # provider records and revocations, some rejected

    # a Care Certificate, withdrawn by a revoked standard, then issued again (generation 1)
    idx, pseudo, cc_index = certify(system, [standard(i) for i in range(1, 17)], "rk-01")
    committed(system, [revoke("rk-05-revoke", "rk-05", "CC-STD-05")])
    system.wait_for(lambda: revocations_of(system, pseudo, cc_index), what="the award's revocation")
    committed(system, [standard(5, "rk-05-redo")])
    system.wait_for(lambda: len(awards(system, pseudo)) == 2, what="the Care Certificate again")

    # an operator revocation of a provider record
    r = system.run_cli(["revoke", str(idx["rk-09"]), "--reason", "FRAUD", "--wait", "20"])
    assert r.returncode == 0, r.stdout + r.stderr
    system.wait_for(lambda: len(revocations_of(system, pseudo, awards(system, pseudo)[1][0])) == 1,
                    what="the second award's revocation")
    committed(system, [standard(9, "rk-09-redo")])   # held again, generation 2, at the end
    system.wait_for(lambda: len(awards(system, pseudo)) == 3, what="the third Care Certificate")

    # a standard revoked before its set completes: only the standard is forgotten
    idx2 = committed(system, [standard(i, f"rk2-{i:02d}", ni=NI2) for i in range(1, 4)])
    committed(system, [revoke("rk2-02-revoke", "rk2-02", "CC-STD-02", ni=NI2)])
    assert pseudonym_of(system, idx2["rk2-01"])

    # a key rotation, then more records under the new key
    system.kill("signer", signal.SIGTERM)
    system.wait_exit("signer")
    rot = system.run_cli(["rotate-key"])
    assert rot.returncode == 0, rot.stdout + rot.stderr
    system.start_service("signer")
    system.wait_healthy("signer")
    committed(system, [event("rk-after-rotation", ni_number=NI2, qualification_code="RF-FIRE",
                             completion_date="2025-03-03")])
    # one more round through the pipeline, so that every commit is indexed in Redis
    committed(system, [event("rk-last", ni_number=NI, qualification_code="RF-FIRE",
                             completion_date="2025-03-04")])
    system.wait_for(lambda: system.redis().get("cp:reg:{0}:indexed") is not None and
                    int(system.redis().get("cp:reg:{0}:indexed")) ==
                    int((system.register_dir / "checkpoint").read_text().split("\n")[1]),
                    what="Redis indexed up to the register's size")
    return pseudo


def test_reindex_rebuilds_every_key_the_live_services_wrote(system):
    pseudo = varied_run(system)
    live = read_every_key(system)
    before = rebuildable(live)
    # the three Care Certificates carry keyed ids, one tag per generation (computed here apart from
    # carepass), and the last is the code's "<code>:last", which the replay must rebuild too
    assert [pe.provider_event_id for _, pe in awards(system, pseudo)] == \
        [award_id(system, pseudo, g) for g in range(3)]
    assert before[f"cp:w:{{{pseudo}}}:award_gen"][1]["CC:last"] == award_id(system, pseudo, 2).encode()
    # the run touched every family the projection owns
    for family in (":entries", ":cc", ":awards", ":award_gen", "cp:ev:{carepass:award:",
                   "cp:ev:{carepass-operator:", "cp:reg:{0}:indexed", "cp:exp:{", EXP_DUE):
        assert any(family in k for k in before), family
    # the expiry schedule is compared: records scheduled and records revoked
    states = {v.get("state") for k, (t, v) in before.items() if EXP_SCHEDULE.search(k)}
    assert {b"scheduled", b"revoked"} <= states, states

    with system.redis() as r:
        r.cmd("FLUSHALL")
    system.run_cli(["reindex"], check=True)
    after = read_every_key(system)
    assert rebuildable(after) == before, diff(before, rebuildable(after))
    # reindex writes nothing the exclusions would hide: no key, and (notify's progress aside) no value
    assert set(rebuildable(after)) == set(after), diff(rebuildable(after), after)
    assert ({k: v for k, v in rebuildable(after).items() if not exp_progress(k)} ==
            {k: v for k, v in after.items() if not exp_progress(k)}), diff(rebuildable(after), after)

    # a second reindex over that state changes nothing
    system.run_cli(["reindex"], check=True)
    assert read_every_key(system) == after, diff(after, read_every_key(system))


def compare_after_reindex(system):
    """Every key read, FLUSHALL, reindex, every key read again: assert the rebuildable ones equal."""
    before = rebuildable(read_every_key(system))
    with system.redis() as r:
        r.cmd("FLUSHALL")
    system.run_cli(["reindex"], check=True)
    after = read_every_key(system)
    assert rebuildable(after) == before, diff(before, rebuildable(after))
    return before


def test_reindex_rebuilds_a_late_withdrawal_in_the_gap_and_after_it(system):
    """A standard revoked while its award is in the signer's queue (verify withdraws the award and
    records the late withdrawal): every key is the same after a reindex both in the gap (award and
    revocation committed, verify stopped before it sends the award's revocation) and once verify
    has finished it."""
    from test_award_revocation import _withdraw_award_before_it_commits
    try:
        pseudo = _withdraw_award_before_it_commits(system)
        system.kill("verify", signal.SIGSTOP)   # the gap: verify does not finish it yet
    finally:
        system.kill("signer", signal.SIGCONT)
    akey = award_key(system, pseudo)
    try:
        system.wait_for(lambda: system.redis().hget(akey, "state") == b"committed" and
                        system.redis().hget("cp:ev:{PRV-0001:ar-05-revoke}", "state") == b"committed",
                        timeout=30, what="the award and the standard's revocation committed")
        size = int((system.register_dir / "checkpoint").read_text().split("\n")[1])
        system.wait_for(lambda: int(system.redis().get("cp:reg:{0}:indexed") or 0) == size,
                        what="Redis indexed up to the register's size")
        gap = compare_after_reindex(system)
        assert gap["cp:award_wd"][1], "the late withdrawal is in the state compared"
        # its value names the award by the id it has (keyed), as verify and the replay write it
        assert gap["cp:award_wd"][1] == {f"CC:0:{pseudo}":
                                         f"0 2025-02-01 {award_id(system, pseudo)}".encode()}, gap["cp:award_wd"]
    finally:
        system.kill("verify", signal.SIGCONT)
    system.wait_for(lambda: system.redis().cmd("HLEN", "cp:award_wd") == 0, timeout=30,
                    what="verify finished the late withdrawal")
    committed(system, [event("rk-late-last", ni_number=NI, qualification_code="RF-FIRE",
                             completion_date="2025-03-04")])
    size = int((system.register_dir / "checkpoint").read_text().split("\n")[1])
    system.wait_for(lambda: int(system.redis().get("cp:reg:{0}:indexed") or 0) == size,
                    what="Redis indexed up to the register's size")
    compare_after_reindex(system)


@pytest.mark.carepass(services=("bus", "intake", "verify", "signer", "notify", "gateway"))
def test_reindex_rebuilds_consents(system):
    """Consent entries (ongoing access) and a withdrawal beside provider records: the consent
    hashes, the staff and worker sets and the consent events' states and digests are rebuilt the
    same."""
    import json
    from test_consent import http_request, wait_state
    committed(system, [event("cn-rec", ni_number=NI, qualification_code="RF-FIRE", completion_date="2025-03-04")])
    tok = system.run_cli(["worker-token", NI, "--days", "2"], check=True).stdout.strip()
    tok2 = system.run_cli(["worker-token", NI2, "--days", "2"], check=True).stdout.strip()
    ids = []
    for t, emp in ((tok, "EMP-0001"), (tok, "EMP-0002"), (tok2, "EMP-0001")):
        st, b = http_request(system, "POST", "/v1/consents", {"employer": emp}, t)
        assert st == 202, b
        ids.append((t, json.loads(b)["id"]))
    for t, cid in ids:
        wait_state(system, t, cid, "active")
    st, b = http_request(system, "DELETE", f"/v1/consents/{ids[1][1]}", token=tok)
    assert st == 202, b
    wait_state(system, tok, ids[1][1], None)
    size = int((system.register_dir / "checkpoint").read_text().split("\n")[1])
    system.wait_for(lambda: int(system.redis().get("cp:reg:{0}:indexed") or 0) == size,
                    what="Redis indexed up to the register's size")
    before = compare_after_reindex(system)
    assert sorted(before["cp:emp:{EMP-0001}:staff"][1]) == sorted(x[1][3:].encode() for x in (ids[0], ids[2]))
    assert "cp:emp:{EMP-0002}:staff" not in before
    assert sum(k.startswith("cp:cn:") for k in before) == 2
    assert any(k.startswith("cp:ev:{carepass-consent:withdraw:") for k in before)
