"""test_award_revocation.py -- a derived award falls with its requirement: revoking one of the 16
Care Certificate standards revokes the Care Certificate (reason REQUIREMENT_REVOKED), exactly once,
and completing the standard again issues a new Care Certificate under a new event id. The same
holds for an operator revocation (`carepass revoke`); and an award whose verify dies between
claiming it and sending it is re-sent by the redrive. A standard revoked while the award is issued
but not yet committed (in the signer's queue, or waiting for a redrive) withdraws it too: verify
records the late withdrawal (cp:award_wd) and sends the award's revocation once the award commits;
`carepass reindex` rebuilds that record."""

import re
import signal
import time

import pytest

from award_helpers import (award_id, award_key, award_revoke_id, awards, certify, committed, entries,
                           pseudonym_of, revocations_of)
from harness import event
from register_check import Register
from subject_check import worker_of

NI = "JG103759A"



def _hget(system, key, field):
    """One field of a Redis hash, on a connection closed at once."""
    with system.redis() as r:
        return r.hget(key, field)

def standard(i, eid=None):
    return event(eid or f"ar-{i:02d}", ni_number=NI, qualification_code=f"CC-STD-{i:02d}",
                 completion_date="2025-02-01", assessor_id="ASR-1")


def test_revoking_a_standard_revokes_the_care_certificate_and_redoing_it_reissues(system):
    idx = committed(system, [standard(i) for i in range(1, 17)])
    reg = Register(system.register_dir)
    pseudo = worker_of(system, reg.passport_entry(idx["ar-01"], system.register_pb)).hex()
    system.wait_for(lambda: len(awards(system, pseudo)) == 1, what="the Care Certificate")
    (cc_index, cc), = awards(system, pseudo)
    assert (cc.provider_id, cc.provider_event_id) == ("carepass", award_id(system, pseudo))

    # the provider withdraws standard 5
    rev = system.submit([event("ar-05-revoke", ni_number=NI, qualification_code="CC-STD-05",
                               completion_date="2025-02-01", kind="revocation",
                               revokes_event_id="ar-05",
                               revocation_reason="ISSUED_IN_ERROR")]).replies[0]
    assert rev.outcome == system.pb.OUTCOME_COMMITTED, (rev.reason_code, rev.message)
    system.wait_for(lambda: revocations_of(system, pseudo, cc_index), what="the award's revocation")
    (crev_index, crev), = revocations_of(system, pseudo, cc_index)
    assert crev.reason_code == "REQUIREMENT_REVOKED"
    assert (crev.provider_id, crev.provider_event_id) == ("carepass", award_revoke_id(award_id(system, pseudo)))
    assert worker_of(system, crev).hex() == pseudo
    assert crev_index > rev.entry_index
    reg = Register(system.register_dir)
    assert reg.verify_checkpoint() and reg.verify_entry(crev_index, system.register_pb)

    with system.redis() as r:
        assert r.cmd("SISMEMBER", f"cp:w:{{{pseudo}}}:awards", "CC") == 0
        assert r.cmd("SISMEMBER", f"cp:w:{{{pseudo}}}:cc", "CC-STD-05") == 0
        assert r.cmd("SISMEMBER", f"cp:w:{{{pseudo}}}:cc", "CC-STD-06") == 1
        assert r.hget(award_key(system, pseudo), "revoked_by") == \
            award_revoke_id(award_id(system, pseudo)).encode()

    pp = system.run_cli(["passport", NI])
    assert pp.returncode == 0, pp.stdout + pp.stderr
    assert f"revoked (by #{crev_index}, REQUIREMENT_REVOKED)" in pp.stdout, pp.stdout
    assert f"revokes #{cc_index} (REQUIREMENT_REVOKED)" in pp.stdout, pp.stdout

    # re-sending the standard's revocation (a redrive, or the provider retrying) revokes nothing more
    again = system.submit([event("ar-05-revoke", ni_number=NI, qualification_code="CC-STD-05",
                                 completion_date="2025-02-01", kind="revocation",
                                 revokes_event_id="ar-05",
                                 revocation_reason="ISSUED_IN_ERROR")]).replies[0]
    assert again.outcome == system.pb.OUTCOME_COMMITTED and again.entry_index == rev.entry_index
    # revoking another standard while the award is withdrawn adds no second award revocation
    committed(system, [event("ar-07-revoke", ni_number=NI, qualification_code="CC-STD-07",
                             completion_date="2025-02-01", kind="revocation",
                             revokes_event_id="ar-07", revocation_reason="DUPLICATE")])
    assert len(revocations_of(system, pseudo, cc_index)) == 1

    # completing standards 5 and 7 again issues a new Care Certificate, with a new event id
    committed(system, [standard(5, "ar-05-redo"), standard(7, "ar-07-redo")])
    system.wait_for(lambda: len(awards(system, pseudo)) == 2, what="the re-issued Care Certificate")
    (_, _), (cc2_index, cc2) = awards(system, pseudo)
    assert cc2_index > crev_index
    assert (cc2.provider_id, cc2.provider_event_id) == ("carepass", award_id(system, pseudo, 1))
    assert not revocations_of(system, pseudo, cc2_index)

    # and revoking a standard again withdraws that one under a new revocation id
    committed(system, [event("ar-09-revoke", ni_number=NI, qualification_code="CC-STD-09",
                             completion_date="2025-02-01", kind="revocation",
                             revokes_event_id="ar-09", revocation_reason="FRAUD")])
    system.wait_for(lambda: revocations_of(system, pseudo, cc2_index), what="the second award's revocation")
    (_, crev2), = revocations_of(system, pseudo, cc2_index)
    assert crev2.provider_event_id == award_revoke_id(award_id(system, pseudo, 1))
    assert crev2.reason_code == "REQUIREMENT_REVOKED"
    assert len(awards(system, pseudo)) == 2

    # Redis is derived state: rebuilt from the register alone, the award progress is the same
    def progress():
        with system.redis() as r:
            return (sorted(r.cmd("SMEMBERS", f"cp:w:{{{pseudo}}}:cc")),
                    sorted(r.cmd("SMEMBERS", f"cp:w:{{{pseudo}}}:awards")),
                    r.cmd("HGET", f"cp:w:{{{pseudo}}}:award_gen", "CC"))
    before = progress()
    assert before[2] == b"2" and b"CC-STD-09" not in before[0] and before[1] == []
    with system.redis() as r:
        r.cmd("FLUSHALL")
    for _ in range(2):  # reindex twice: the same state
        system.run_cli(["reindex"], check=True)
        assert progress() == before


def test_revoking_a_standard_before_the_award_only_forgets_the_standard(system):
    idx = committed(system, [standard(i) for i in range(1, 16)])
    pseudo = pseudonym_of(system, idx["ar-01"])
    committed(system, [event("ar-03-revoke", ni_number=NI, qualification_code="CC-STD-03",
                             completion_date="2025-02-01", kind="revocation",
                             revokes_event_id="ar-03", revocation_reason="ISSUED_IN_ERROR")])
    # the 16th standard does not complete the set: standard 3 no longer counts
    committed(system, [standard(16)])
    with system.redis() as r:
        assert r.cmd("SISMEMBER", f"cp:w:{{{pseudo}}}:cc", "CC-STD-03") == 0
    assert not awards(system, pseudo)
    assert not [pe for _, pe in entries(system, pseudo) if pe.provider_id == "carepass"]
    # redoing standard 3 completes it
    committed(system, [standard(3, "ar-03-redo")])
    system.wait_for(lambda: len(awards(system, pseudo)) == 1, what="the Care Certificate")
    (_, cc), = awards(system, pseudo)
    assert cc.provider_event_id == award_id(system, pseudo)


def test_the_revoked_records_own_code_counts_not_the_code_the_revocation_names(system):
    idx, pseudo, cc_index = certify(system, [standard(i) for i in range(1, 17)], "ar-01")
    # the revocation names the event ar-05 but carries another qualification code
    committed(system, [event("ar-05-revoke", ni_number=NI, qualification_code="RF-FIRE",
                             completion_date="2025-02-01", kind="revocation",
                             revokes_event_id="ar-05", revocation_reason="ISSUED_IN_ERROR")])
    system.wait_for(lambda: revocations_of(system, pseudo, cc_index), what="the award's revocation")
    with system.redis() as r:
        assert r.cmd("SISMEMBER", f"cp:w:{{{pseudo}}}:cc", "CC-STD-05") == 0
        assert r.cmd("SCARD", f"cp:w:{{{pseudo}}}:cc") == 15


def test_two_standards_revoked_together_revoke_the_award_once(system):
    idx, pseudo, cc_index = certify(system, [standard(i) for i in range(1, 17)], "ar-01")
    committed(system, [event(f"ar-{i:02d}-revoke", ni_number=NI, qualification_code=f"CC-STD-{i:02d}",
                             completion_date="2025-02-01", kind="revocation",
                             revokes_event_id=f"ar-{i:02d}", revocation_reason="ISSUED_IN_ERROR")
                       for i in (2, 11)])
    system.wait_for(lambda: revocations_of(system, pseudo, cc_index), what="the award's revocation")
    committed(system, [standard(1, "ar-01-again")])   # one more round through verify and the signer
    assert len(revocations_of(system, pseudo, cc_index)) == 1
    with system.redis() as r:
        assert r.cmd("HGET", f"cp:w:{{{pseudo}}}:award_gen", "CC") == b"1"


def test_operator_revocation_of_a_standard_withdraws_the_care_certificate(system):
    """`carepass revoke INDEX` of one of the 16 standards goes through verify like a provider's
    revocation: the Care Certificate is revoked (REQUIREMENT_REVOKED), and completing the standard
    again issues a new generation. reindex rebuilds the same award state."""
    idx, pseudo, cc_index = certify(system, [standard(i) for i in range(1, 17)], "ar-01")

    r = system.run_cli(["revoke", str(idx["ar-05"]), "--reason", "FRAUD"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"entry {idx['ar-05']} revoked by entry " in r.stdout, r.stdout
    op_index = int(r.stdout.split(f"entry {idx['ar-05']} revoked by entry ")[1].split()[0])
    system.wait_for(lambda: revocations_of(system, pseudo, cc_index), what="the award's revocation")
    (crev_index, crev), = revocations_of(system, pseudo, cc_index)
    assert crev.reason_code == "REQUIREMENT_REVOKED" and crev_index > op_index
    assert (crev.provider_id, crev.provider_event_id) == ("carepass", award_revoke_id(award_id(system, pseudo)))
    (_, op), = revocations_of(system, pseudo, idx["ar-05"])
    assert (op.provider_id, op.provider_event_id, op.reason_code) == \
        ("carepass-operator", f"op-revoke-{idx['ar-05']}", "FRAUD")
    with system.redis() as red:
        assert red.cmd("SISMEMBER", f"cp:w:{{{pseudo}}}:awards", "CC") == 0
        assert red.cmd("SISMEMBER", f"cp:w:{{{pseudo}}}:cc", "CC-STD-05") == 0
        assert red.hget("cp:ev:{PRV-0001:ar-05}", "revoked_by") == f"op-revoke-{idx['ar-05']}".encode()
        assert red.cmd("ZCARD", "cp:pending") == 0

    # what an employer sees: the Care Certificate is revoked, not valid
    pp = system.run_cli(["passport", NI])
    assert pp.returncode == 0, pp.stdout + pp.stderr
    assert f"revoked (by #{crev_index}, REQUIREMENT_REVOKED)" in pp.stdout, pp.stdout
    assert f"revoked (by #{op_index}, FRAUD)" in pp.stdout, pp.stdout

    # the command again: nothing more
    again = system.run_cli(["revoke", str(idx["ar-05"]), "--reason", "FRAUD"])
    assert again.returncode == 0 and "already revoked" in again.stdout, again.stdout + again.stderr
    assert len(revocations_of(system, pseudo, cc_index)) == 1

    # completing standard 5 again issues generation 1
    committed(system, [standard(5, "ar-05-redo")])
    system.wait_for(lambda: len(awards(system, pseudo)) == 2, what="the re-issued Care Certificate")
    (_, _), (cc2_index, cc2) = awards(system, pseudo)
    assert cc2.provider_event_id == award_id(system, pseudo, 1) and cc2_index > crev_index
    pp = system.run_cli(["passport", NI])
    assert re.search(rf"^{cc2_index}\s+CC\s.*\s2025-02-01\s+-\s+valid\s", pp.stdout, re.M), pp.stdout

    def progress():
        with system.redis() as red:
            return (sorted(red.cmd("SMEMBERS", f"cp:w:{{{pseudo}}}:cc")),
                    sorted(red.cmd("SMEMBERS", f"cp:w:{{{pseudo}}}:awards")),
                    red.cmd("HGET", f"cp:w:{{{pseudo}}}:award_gen", "CC"),
                    red.hget(f"cp:ev:{{carepass-operator:op-revoke-{idx['ar-05']}}}", "digest"))
    before = progress()
    assert before[1] == [b"CC"] and before[2] == b"1" and len(before[0]) == 16 and before[3]
    with system.redis() as red:
        red.cmd("FLUSHALL")
    for _ in range(2):
        system.run_cli(["reindex"], check=True)
        assert progress() == before


@pytest.mark.carepass(extra_env={"CAREPASS_REDRIVE_AFTER_MS": "1000"})
def test_award_survives_verify_killed_between_claim_and_send(system):
    """verify SIGKILLed right after it claimed the award (SADD awards + pending award event, one
    Lua step) and before it sent anything: the redrive re-sends the standards and the award; the
    award is issued exactly once, after the standard that completed it."""
    system.restart("verify", extra_env={"CAREPASS_TEST_CRASH_POINT": "verify.award_claimed:1"})
    rep = system.submit([standard(i) for i in range(1, 17)], ack="accepted")
    assert all(r.outcome == system.pb.OUTCOME_ACCEPTED for r in rep.replies), rep
    system.wait_for(lambda: not system.running("verify"), what="verify killed at the crash point")
    assert system.procs["verify"].returncode == -signal.SIGKILL
    with system.redis() as red:
        keys = red.keys("cp:w:*:awards")
        assert len(keys) == 1
        k0 = keys[0].decode() if isinstance(keys[0], bytes) else keys[0]
        pseudo = k0.split("{")[1].split("}")[0]
        akey = award_key(system, pseudo)
        assert red.hget(akey, "state") == b"accepted"   # claimed, never sent
    system.restart("verify")

    def all_committed():
        with system.redis() as red:
            return all(red.hget(f"cp:ev:{{PRV-0001:ar-{i:02d}}}", "state") == b"committed"
                       for i in range(1, 17)) and red.hget(akey, "state") == b"committed"
    system.wait_for(all_committed, timeout=30, what="the standards and the award committed")
    (cc_index, cc), = awards(system, pseudo)
    assert cc.provider_event_id == award_id(system, pseudo)
    std_index = max(int(_hget(system, f"cp:ev:{{PRV-0001:ar-{i:02d}}}", "index")) for i in range(1, 17))
    assert cc_index > std_index
    system.wait_for(lambda: system.redis().cmd("ZCARD", "cp:pending") == 0, what="nothing pending")
    assert "derived award re-sent" in system.log_text("verify")
    reg = Register(system.register_dir)
    assert reg.verify_checkpoint() and reg.verify_entry(cc_index, system.register_pb)


def _award_progress(system, pseudo):
    with system.redis() as red:
        return (sorted(red.cmd("SMEMBERS", f"cp:w:{{{pseudo}}}:cc")),
                sorted(red.cmd("SMEMBERS", f"cp:w:{{{pseudo}}}:awards")),
                red.cmd("HGET", f"cp:w:{{{pseudo}}}:award_gen", "CC"),
                sorted(red.cmd("HKEYS", "cp:award_wd")))


def _accepted(system, evs):
    rep = system.submit(evs, ack="accepted")
    for r in rep.replies:
        assert r.outcome == system.pb.OUTCOME_ACCEPTED, (r.provider_event_id, r.reason_code, r.message)


def _withdraw_award_before_it_commits(system):
    """15 standards committed; with the signer stopped, the 16th (issuing the award into the
    signer's queue) and the provider's revocation of standard 5; returns the worker's pseudonym hex
    once verify recorded the late withdrawal. The signer is left stopped."""
    idx = committed(system, [standard(i) for i in range(1, 16)])
    pseudo = pseudonym_of(system, idx["ar-01"])
    akey = award_key(system, pseudo)
    system.kill("signer", signal.SIGSTOP)
    _accepted(system, [standard(16)])
    system.wait_for(lambda: _hget(system, akey, "state") == b"accepted",
                    what="the award issued into the signer's queue")
    _accepted(system, [event("ar-05-revoke", ni_number=NI, qualification_code="CC-STD-05",
                             completion_date="2025-02-01", kind="revocation",
                             revokes_event_id="ar-05", revocation_reason="ISSUED_IN_ERROR")])
    field = f"CC:0:{pseudo}".encode()
    system.wait_for(lambda: system.redis().cmd("HKEYS", "cp:award_wd") == [field],
                    what="the late withdrawal recorded")
    with system.redis() as red:
        assert red.hget(akey, "state") == b"accepted"   # still not on the register
        assert red.hget(akey, "revoked_by") == award_revoke_id(award_id(system, pseudo)).encode()
        # the record names the award by its id, for verify_withdraw.c to revoke
        assert red.hget("cp:award_wd", field) == f"0 2025-02-01 {award_id(system, pseudo)}".encode()
        assert red.cmd("SISMEMBER", f"cp:w:{{{pseudo}}}:awards", "CC") == 0
        assert red.cmd("HGET", f"cp:w:{{{pseudo}}}:award_gen", "CC") == b"1"
    return pseudo


def _assert_award_and_its_revocation(system, pseudo):
    def done():
        aw = awards(system, pseudo)
        return len(aw) == 1 and revocations_of(system, pseudo, aw[0][0])
    system.wait_for(done, timeout=30, what="the award and its revocation on the register")
    (cc_index, cc), = awards(system, pseudo)
    assert cc.provider_event_id == award_id(system, pseudo)
    (crev_index, crev), = revocations_of(system, pseudo, cc_index)
    assert crev.reason_code == "REQUIREMENT_REVOKED"
    assert (crev.provider_id, crev.provider_event_id) == ("carepass", award_revoke_id(award_id(system, pseudo)))
    assert crev_index > cc_index
    reg = Register(system.register_dir)
    assert reg.verify_checkpoint() and reg.verify_entry(crev_index, system.register_pb)
    system.wait_for(lambda: system.redis().cmd("HLEN", "cp:award_wd") == 0, what="the record cleared")
    system.wait_for(lambda: system.redis().cmd("ZCARD", "cp:pending") == 0, what="nothing pending")
    # one more round through verify and the signer, and a few ticks: still exactly one revocation
    committed(system, [standard(1, "ar-01-again")])
    assert len(revocations_of(system, pseudo, cc_index)) == 1
    pp = system.run_cli(["passport", NI])
    assert pp.returncode == 0, pp.stdout + pp.stderr
    assert f"revoked (by #{crev_index}, REQUIREMENT_REVOKED)" in pp.stdout, pp.stdout
    return cc_index


def test_standard_revoked_while_the_award_is_not_yet_committed_revokes_it_after_the_commit(system):
    """The award is in the signer's queue (sent, not committed) when standard 5 is revoked: verify
    withdraws it in Redis and records the withdrawal (cp:award_wd); once the signer commits the
    award, verify's tick sends its revocation (REQUIREMENT_REVOKED), exactly once."""
    try:
        pseudo = _withdraw_award_before_it_commits(system)
    finally:
        system.kill("signer", signal.SIGCONT)
    _assert_award_and_its_revocation(system, pseudo)
    assert "derived award revoked after it committed" in system.log_text("verify")
    with system.redis() as red:
        assert red.hget(award_key(system, pseudo), "revoked_by") == \
            award_revoke_id(award_id(system, pseudo)).encode()

    # Redis rebuilt from the register alone: the same award state
    before = _award_progress(system, pseudo)
    assert before[1] == [] and before[2] == b"1" and before[3] == [] and b"CC-STD-05" not in before[0]
    with system.redis() as red:
        red.cmd("FLUSHALL")
    for _ in range(2):
        system.run_cli(["reindex"], check=True)
        assert _award_progress(system, pseudo) == before

    # redoing standard 5 issues generation 1, which stays valid
    committed(system, [standard(5, "ar-05-redo")])
    system.wait_for(lambda: len(awards(system, pseudo)) == 2, what="the re-issued Care Certificate")
    (_, _), (cc2_index, cc2) = awards(system, pseudo)
    assert cc2.provider_event_id == award_id(system, pseudo, 1)
    assert not revocations_of(system, pseudo, cc2_index)


def test_reindex_in_the_gap_records_the_late_withdrawal_and_verify_finishes_it(system):
    """Redis lost after the award and the standard's revocation committed but before verify sent
    the award's revocation: `carepass reindex` rebuilds the late-withdrawal record from the
    register (an award, then a revocation of a standard it requires, without the award's
    revocation), and verify then revokes the award."""
    try:
        pseudo = _withdraw_award_before_it_commits(system)
        system.kill("verify", signal.SIGSTOP)   # verify must not finish it before Redis is lost
    finally:
        system.kill("signer", signal.SIGCONT)
    try:
        akey = award_key(system, pseudo)
        system.wait_for(lambda: _hget(system, akey, "state") == b"committed" and
                        _hget(system, "cp:ev:{PRV-0001:ar-05-revoke}", "state") == b"committed",
                        timeout=30, what="the award and the standard's revocation committed")
        (cc_index, _), = awards(system, pseudo)
        assert not revocations_of(system, pseudo, cc_index)
        gap = _award_progress(system, pseudo)
        with system.redis() as red:
            red.cmd("FLUSHALL")
        for _ in range(2):
            system.run_cli(["reindex"], check=True)
            assert _award_progress(system, pseudo) == gap
    finally:
        system.kill("verify", signal.SIGCONT)
    _assert_award_and_its_revocation(system, pseudo)


@pytest.mark.carepass(extra_env={"CAREPASS_REDRIVE_AFTER_MS": "1000"})
def test_award_withdrawn_before_it_was_ever_sent_is_redriven_then_revoked(system):
    """verify dies right after claiming the award (never sent); with the signer stopped, the redrive
    brings the 16th standard and the award back, and standard 5 is revoked while the award is still
    pending: the redrive still takes the withdrawn award onto the register (it is not rejected),
    and its revocation follows, exactly once."""
    idx = committed(system, [standard(i) for i in range(1, 16)])
    pseudo = pseudonym_of(system, idx["ar-01"])
    akey = award_key(system, pseudo)
    system.restart("verify", extra_env={"CAREPASS_TEST_CRASH_POINT": "verify.award_claimed:1"})
    system.kill("signer", signal.SIGSTOP)
    try:
        _accepted(system, [standard(16)])
        system.wait_for(lambda: not system.running("verify"), what="verify killed at the crash point")
        assert _hget(system, akey, "state") == b"accepted"
        system.restart("verify")
        _accepted(system, [event("ar-05-revoke", ni_number=NI, qualification_code="CC-STD-05",
                                 completion_date="2025-02-01", kind="revocation",
                                 revokes_event_id="ar-05", revocation_reason="ISSUED_IN_ERROR")])
        system.wait_for(lambda: system.redis().cmd("HKEYS", "cp:award_wd") == [f"CC:0:{pseudo}".encode()],
                        what="the late withdrawal recorded")
        time.sleep(2.5)   # a redrive or two of the award while the standard it needs is not committed
        assert _hget(system, akey, "state") == b"accepted"
    finally:
        system.kill("signer", signal.SIGCONT)
    _assert_award_and_its_revocation(system, pseudo)
    assert "derived award re-sent" in system.log_text("verify")
