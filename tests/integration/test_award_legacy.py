"""test_award_legacy.py -- awards issued before award ids were keyed stay on registers, with their
old event id "award:<code>:<first 16 hex of the pseudonym>[:g<gen>]" and no "<code>:last" in
cp:w:{hex}:award_gen; everything after the upgrade must still name them by that id: the award's
revocation when a standard it requires is revoked (committed, or still in the signer's queue with a
late-withdrawal record written before the record carried the award id), a redrive of it, and
`carepass reindex`, which must rebuild the same state. Only the next award (generation 1) gets a
keyed id.

How the legacy state is made: verify now issues only keyed ids, so the test plays the old verify
at the one step where the two differ, issuing the award, and does it as the old issue script did:
the award code claimed in cp:w:{hex}:awards (so today's verify, which finds it held, issues none),
the award's cp:ev accepted with its PendingEvent bytes and src, a cp:pending entry, and the award
sent to the real signer as verify sends records (a VerifiedRecord on the signer's PULL socket). The
signer signs, commits and projects it like any award; every other step is the real services'."""

import signal
import time

import pytest
import zmq

from award_helpers import (DERIVED_AWARD, award_id, awards, committed, legacy_award_id, revocations_of)
from harness import event
from test_reindex_every_key import diff, read_every_key, rebuildable
from test_subject_register import pseudonym

NI = "JG103759A"
DATE = "2025-02-01"


def standard(i, eid=None):
    return event(eid or f"lg-{i:02d}", ni_number=NI, qualification_code=f"CC-STD-{i:02d}",
                 completion_date=DATE, assessor_id="ASR-1")


def revoke_standard_5():
    return event("lg-05-revoke", ni_number=NI, qualification_code="CC-STD-05", completion_date=DATE,
                 kind="revocation", revokes_event_id="lg-05", revocation_reason="ISSUED_IN_ERROR")


def indexed(system):
    size = int((system.register_dir / "checkpoint").read_text().split("\n")[1])
    system.wait_for(lambda: int(system.redis().get("cp:reg:{0}:indexed") or 0) == size,
                    what="Redis indexed up to the register's size")


def reindex_rebuilds_the_same(system, passes=2):
    """Every key read, FLUSHALL, reindex (`passes` times: the second over the state the first
    built), every key read again: the same rebuildable state."""
    indexed(system)
    before = rebuildable(read_every_key(system))
    with system.redis() as r:
        r.cmd("FLUSHALL")
    for _ in range(passes):
        system.run_cli(["reindex"], check=True)
        after = rebuildable(read_every_key(system))
        assert after == before, diff(before, after)
    return before


def certified_the_old_way(system):
    """The worker's 16 standards committed and a legacy-id Care Certificate issued as a verify from
    before keyed ids issued it (see the module comment), not yet sent to the signer; returns
    (pseudonym hex, the award's PendingEvent)."""
    p = pseudonym(system, NI)
    hexp = p.hex()
    with system.redis() as r:   # the old verify's claim: the award code held (before the set completes)
        assert r.cmd("SADD", f"cp:w:{{{hexp}}}:awards", "CC") == 1
    committed(system, [standard(i) for i in range(1, 17)])
    assert not awards(system, hexp), "today's verify issued no award: the old one had claimed it"
    ev = system.internal_pb.PendingEvent(
        provider_id="carepass", provider_event_id=legacy_award_id(hexp), worker_pseudonym=p,
        qualification_code="CC", completion_date=DATE, assessor_id="",
        kind=system.pb.EVENT_KIND_COMPLETION, received_at=int(time.time() * 1000), reply_to="")
    now = int(time.time() * 1000)
    with system.redis() as r:   # the rest of the old issue script: the award as a pending event
        key = f"cp:ev:{{carepass:{legacy_award_id(hexp)}}}"
        r.cmd("HSET", key, "state", "accepted", "pending", ev.SerializeToString(), "t", now,
              "src", "cp:ev:{PRV-0001:lg-16}")
        redrive_ms = int(system.env.get("CAREPASS_REDRIVE_AFTER_MS", "30000"))
        r.cmd("ZADD", "cp:pending", now + redrive_ms, f"carepass:{legacy_award_id(hexp)}")
    return hexp, ev


def send_to_signer(system, ev):
    """The award to the signer, as verify sends a record."""
    rec = system.internal_pb.VerifiedRecord(event=ev, entry_type=DERIVED_AWARD, valid_until="")
    s = system.zctx.socket(zmq.PUSH)
    try:
        s.setsockopt(zmq.LINGER, 5000)
        s.connect(f"tcp://127.0.0.1:{system.signer_port}")
        s.send(rec.SerializeToString())
    finally:
        s.close()


def the_legacy_award_revoked(system, hexp):
    """The legacy award on the register and its one revocation, named by the legacy ids."""
    def done():
        aw = awards(system, hexp)
        return len(aw) == 1 and revocations_of(system, hexp, aw[0][0])
    system.wait_for(done, timeout=30, what="the legacy award and its revocation on the register")
    (cc_index, cc), = awards(system, hexp)
    assert cc.provider_event_id == legacy_award_id(hexp) == f"award:CC:{hexp[:16]}"
    (crev_index, crev), = revocations_of(system, hexp, cc_index)
    assert (crev.provider_id, crev.provider_event_id, crev.reason_code) == \
        ("carepass", f"award-revoke:CC:{hexp[:16]}:0", "REQUIREMENT_REVOKED")
    assert crev_index > cc_index
    with system.redis() as r:
        assert r.hget(f"cp:ev:{{carepass:award:CC:{hexp[:16]}}}", "revoked_by") == \
            f"award-revoke:CC:{hexp[:16]}:0".encode()
        assert r.cmd("SISMEMBER", f"cp:w:{{{hexp}}}:awards", "CC") == 0
        assert r.cmd("HGET", f"cp:w:{{{hexp}}}:award_gen", "CC") == b"1"
        assert r.cmd("HGET", f"cp:w:{{{hexp}}}:award_gen", "CC:last") is None   # the old verify wrote none
    return cc_index


def reissued_keyed(system, hexp, cc_index):
    """Standard 5 done again: generation 1 is issued under a keyed id and stays valid."""
    committed(system, [standard(5, "lg-05-redo")])
    system.wait_for(lambda: len(awards(system, hexp)) == 2, what="the re-issued Care Certificate")
    (_, _), (cc2_index, cc2) = awards(system, hexp)
    assert cc2.provider_event_id == award_id(system, hexp, 1) and cc2_index > cc_index
    assert not revocations_of(system, hexp, cc2_index)
    with system.redis() as r:
        assert r.cmd("HGET", f"cp:w:{{{hexp}}}:award_gen", "CC:last") == award_id(system, hexp, 1).encode()
    assert len(revocations_of(system, hexp, cc_index)) == 1


def test_a_legacy_award_is_revoked_by_its_own_id_and_reindex_rebuilds_it(system):
    hexp, ev = certified_the_old_way(system)
    send_to_signer(system, ev)
    system.wait_for(lambda: system.redis().hget(f"cp:ev:{{carepass:{legacy_award_id(hexp)}}}", "state")
                    == b"committed", what="the legacy award committed")
    with system.redis() as r:
        assert r.cmd("ZCARD", "cp:pending") == 0
    before = reindex_rebuilds_the_same(system)   # a register from before the upgrade, as it was
    assert f"cp:ev:{{carepass:award:CC:{hexp[:16]}}}" in before

    # the provider withdraws standard 5: verify revokes the legacy award by its legacy id
    committed(system, [revoke_standard_5()])
    cc_index = the_legacy_award_revoked(system, hexp)
    reindex_rebuilds_the_same(system)

    reissued_keyed(system, hexp, cc_index)
    state = reindex_rebuilds_the_same(system)
    assert state[f"cp:w:{{{hexp}}}:award_gen"][1] == {"CC": b"1", "CC:last": award_id(system, hexp, 1).encode()}


@pytest.mark.carepass(extra_env={"CAREPASS_REDRIVE_AFTER_MS": "1000"})
def test_a_legacy_late_withdrawal_from_before_the_upgrade_is_finished(system):
    """The legacy award in the signer's queue when standard 5 is revoked: verify withdraws it and
    records the late withdrawal; the record is then put back as the old verify wrote it (no award id
    in its value). The redrive re-sends the pending legacy award (verify_awards_redrive accepts the
    legacy id as this worker's), and once the award commits verify's tick revokes it by its legacy
    id; reindex rebuilds the same state."""
    hexp, ev = certified_the_old_way(system)
    field = f"CC:0:{hexp}".encode()
    system.kill("signer", signal.SIGSTOP)
    try:
        send_to_signer(system, ev)   # queued: the signer is stopped
        rep = system.submit([revoke_standard_5()], ack="accepted")
        assert rep.replies[0].outcome == system.pb.OUTCOME_ACCEPTED, rep
        system.wait_for(lambda: system.redis().cmd("HKEYS", "cp:award_wd") == [field],
                        what="the late withdrawal recorded")
        with system.redis() as r:
            # today's verify names the award by the id it has: the legacy one
            assert r.hget("cp:award_wd", field) == f"0 {DATE} award:CC:{hexp[:16]}".encode()
            assert r.hget(f"cp:ev:{{carepass:award:CC:{hexp[:16]}}}", "revoked_by") == \
                f"award-revoke:CC:{hexp[:16]}:0".encode()
            # as the old verify wrote it: no award id in the value
            r.cmd("HSET", "cp:award_wd", field, f"0 {DATE}")
        time.sleep(2.5)   # a redrive or two of the pending legacy award (and the revocation)
        assert system.redis().hget(f"cp:ev:{{carepass:{legacy_award_id(hexp)}}}", "state") == b"accepted"
    finally:
        system.kill("signer", signal.SIGCONT)
    cc_index = the_legacy_award_revoked(system, hexp)
    assert "derived award re-sent" in system.log_text("verify")
    assert "derived award revoked after it committed" in system.log_text("verify")
    system.wait_for(lambda: system.redis().cmd("HLEN", "cp:award_wd") == 0, what="the record cleared")
    system.wait_for(lambda: system.redis().cmd("ZCARD", "cp:pending") == 0, what="nothing pending")
    # One pass only: the award and the standard's revocation reached the signer on two sockets, so
    # either may be first on the register. With the revocation first (as whenever an award commits
    # after its withdrawal: a redrive, another verify replica), a replay over already-built state
    # meets the revocation while the re-issued award is held and withdraws that one too; that is
    # how the replay has always treated this order (not a matter of id styles), so only the rebuild
    # from nothing is compared here.
    reindex_rebuilds_the_same(system, passes=1)
    reissued_keyed(system, hexp, cc_index)
    reindex_rebuilds_the_same(system, passes=1)


def test_an_operator_revocation_of_a_legacy_award_withdraws_it(system):
    """`carepass revoke` of the legacy award itself: verify takes the legacy id as this worker's
    award (its hex16 is the worker's), so the award is withdrawn and its generation moves on, as
    reindex rebuilds it; completing the set again issues a keyed generation 1."""
    hexp, ev = certified_the_old_way(system)
    send_to_signer(system, ev)
    system.wait_for(lambda: len(awards(system, hexp)) == 1, what="the legacy award committed")
    (cc_index, _), = awards(system, hexp)
    r = system.run_cli(["revoke", str(cc_index), "--reason", "ISSUED_IN_ERROR"])
    assert r.returncode == 0, r.stdout + r.stderr
    (_, rev), = revocations_of(system, hexp, cc_index)
    assert (rev.provider_id, rev.reason_code) == ("carepass-operator", "ISSUED_IN_ERROR")
    with system.redis() as red:
        assert red.cmd("SISMEMBER", f"cp:w:{{{hexp}}}:awards", "CC") == 0
        assert red.cmd("HGET", f"cp:w:{{{hexp}}}:award_gen", "CC") == b"1"
    reindex_rebuilds_the_same(system)
    # the set completes again (standard 5 revoked and redone): generation 1, keyed
    committed(system, [revoke_standard_5()])
    assert len(revocations_of(system, hexp, cc_index)) == 1   # the award was no longer held
    reissued_keyed(system, hexp, cc_index)
    reindex_rebuilds_the_same(system)
