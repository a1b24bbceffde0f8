"""test_award_revocation.py -- a derived award falls with its requirement: revoking one of the 16
Care Certificate standards revokes the Care Certificate (reason REQUIREMENT_REVOKED), exactly once,
and completing the standard again issues a new Care Certificate under a new event id."""

from harness import event
from register_check import Register

REVOCATION = 2
NI = "JG103759A"


def standard(i, eid=None):
    return event(eid or f"ar-{i:02d}", ni_number=NI, qualification_code=f"CC-STD-{i:02d}",
                 completion_date="2025-02-01", assessor_id="ASR-1")


def committed(system, evs):
    rep = system.submit(evs)
    for r in rep.replies:
        assert r.outcome == system.pb.OUTCOME_COMMITTED, (r.provider_event_id, r.reason_code, r.message)
    return {r.provider_event_id: r.entry_index for r in rep.replies}


def entries(system, pseudo):
    """(index, PassportEntry) of the worker's entries, in register order."""
    reg = Register(system.register_dir)
    with system.redis() as r:
        idx = sorted(int(x) for x in r.lrange(f"cp:w:{{{pseudo}}}:entries"))
    return [(i, reg.passport_entry(i, system.register_pb)) for i in idx if i < reg.size]


def awards(system, pseudo):
    return [(i, pe) for i, pe in entries(system, pseudo) if pe.qualification_code == "CC"
            and pe.entry_type == system.register_pb.ENTRY_TYPE_DERIVED_AWARD]


def revocations_of(system, pseudo, index):
    return [(i, pe) for i, pe in entries(system, pseudo)
            if pe.entry_type == REVOCATION and pe.revokes_index == index]


def test_revoking_a_standard_revokes_the_care_certificate_and_redoing_it_reissues(system):
    idx = committed(system, [standard(i) for i in range(1, 17)])
    reg = Register(system.register_dir)
    pseudo = reg.passport_entry(idx["ar-01"], system.register_pb).worker_pseudonym.hex()
    system.wait_for(lambda: len(awards(system, pseudo)) == 1, what="the Care Certificate")
    (cc_index, cc), = awards(system, pseudo)
    assert (cc.provider_id, cc.provider_event_id) == ("carepass", f"award:CC:{pseudo[:16]}")

    # the provider withdraws standard 5
    rev = system.submit([event("ar-05-revoke", ni_number=NI, qualification_code="CC-STD-05",
                               completion_date="2025-02-01", kind="revocation",
                               revokes_event_id="ar-05",
                               revocation_reason="ISSUED_IN_ERROR")]).replies[0]
    assert rev.outcome == system.pb.OUTCOME_COMMITTED, (rev.reason_code, rev.message)
    system.wait_for(lambda: revocations_of(system, pseudo, cc_index), what="the award's revocation")
    (crev_index, crev), = revocations_of(system, pseudo, cc_index)
    assert crev.reason_code == "REQUIREMENT_REVOKED"
    assert (crev.provider_id, crev.provider_event_id) == ("carepass", f"award-revoke:CC:{pseudo[:16]}:0")
    assert crev.worker_pseudonym.hex() == pseudo
    assert crev_index > rev.entry_index
    reg = Register(system.register_dir)
    assert reg.verify_checkpoint() and reg.verify_entry(crev_index, system.register_pb)

    with system.redis() as r:
        assert r.cmd("SISMEMBER", f"cp:w:{{{pseudo}}}:awards", "CC") == 0
        assert r.cmd("SISMEMBER", f"cp:w:{{{pseudo}}}:cc", "CC-STD-05") == 0
        assert r.cmd("SISMEMBER", f"cp:w:{{{pseudo}}}:cc", "CC-STD-06") == 1
        assert r.hget(f"cp:ev:{{carepass:award:CC:{pseudo[:16]}}}", "revoked_by") == \
            f"award-revoke:CC:{pseudo[:16]}:0".encode()

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
    assert (cc2.provider_id, cc2.provider_event_id) == ("carepass", f"award:CC:{pseudo[:16]}:g1")
    assert not revocations_of(system, pseudo, cc2_index)

    # and revoking a standard again withdraws that one under a new revocation id
    committed(system, [event("ar-09-revoke", ni_number=NI, qualification_code="CC-STD-09",
                             completion_date="2025-02-01", kind="revocation",
                             revokes_event_id="ar-09", revocation_reason="FRAUD")])
    system.wait_for(lambda: revocations_of(system, pseudo, cc2_index), what="the second award's revocation")
    (_, crev2), = revocations_of(system, pseudo, cc2_index)
    assert crev2.provider_event_id == f"award-revoke:CC:{pseudo[:16]}:1"
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
    pseudo = Register(system.register_dir).passport_entry(idx["ar-01"], system.register_pb) \
        .worker_pseudonym.hex()
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
    assert cc.provider_event_id == f"award:CC:{pseudo[:16]}"


def test_the_revoked_records_own_code_counts_not_the_code_the_revocation_names(system):
    idx = committed(system, [standard(i) for i in range(1, 17)])
    pseudo = Register(system.register_dir).passport_entry(idx["ar-01"], system.register_pb) \
        .worker_pseudonym.hex()
    system.wait_for(lambda: len(awards(system, pseudo)) == 1, what="the Care Certificate")
    (cc_index, _), = awards(system, pseudo)
    # the revocation names the event ar-05 but carries another qualification code
    committed(system, [event("ar-05-revoke", ni_number=NI, qualification_code="RF-FIRE",
                             completion_date="2025-02-01", kind="revocation",
                             revokes_event_id="ar-05", revocation_reason="ISSUED_IN_ERROR")])
    system.wait_for(lambda: revocations_of(system, pseudo, cc_index), what="the award's revocation")
    with system.redis() as r:
        assert r.cmd("SISMEMBER", f"cp:w:{{{pseudo}}}:cc", "CC-STD-05") == 0
        assert r.cmd("SCARD", f"cp:w:{{{pseudo}}}:cc") == 15


def test_two_standards_revoked_together_revoke_the_award_once(system):
    idx = committed(system, [standard(i) for i in range(1, 17)])
    pseudo = Register(system.register_dir).passport_entry(idx["ar-01"], system.register_pb) \
        .worker_pseudonym.hex()
    system.wait_for(lambda: len(awards(system, pseudo)) == 1, what="the Care Certificate")
    (cc_index, _), = awards(system, pseudo)
    committed(system, [event(f"ar-{i:02d}-revoke", ni_number=NI, qualification_code=f"CC-STD-{i:02d}",
                             completion_date="2025-02-01", kind="revocation",
                             revokes_event_id=f"ar-{i:02d}", revocation_reason="ISSUED_IN_ERROR")
                       for i in (2, 11)])
    system.wait_for(lambda: revocations_of(system, pseudo, cc_index), what="the award's revocation")
    committed(system, [standard(1, "ar-01-again")])   # one more round through verify and the signer
    assert len(revocations_of(system, pseudo, cc_index)) == 1
    with system.redis() as r:
        assert r.cmd("HGET", f"cp:w:{{{pseudo}}}:award_gen", "CC") == b"1"
