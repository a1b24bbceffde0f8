"""test_operator_revocation.py -- operator revocations (`carepass revoke`) go through verify: the
derived-award rule applies to them as to a provider's revocations, no provider rule does, a refusal
is reported with its reason and retried by running the command again, and `carepass reindex`
rebuilds the same award state."""

from award_helpers import award_id, awards, certify, committed, revocations_of
from harness import event
from register_check import Register

NI = "CE654321A"


def standard(i, eid=None):
    return event(eid or f"or-{i:02d}", ni_number=NI, qualification_code=f"CC-STD-{i:02d}",
                 completion_date="2025-03-01", assessor_id="ASR-1")


def award_state(system, pseudo):
    with system.redis() as r:
        return (sorted(r.cmd("SMEMBERS", f"cp:w:{{{pseudo}}}:cc")),
                sorted(r.cmd("SMEMBERS", f"cp:w:{{{pseudo}}}:awards")),
                r.cmd("HGET", f"cp:w:{{{pseudo}}}:award_gen", "CC"))


def certified_worker(system):
    return certify(system, [standard(i) for i in range(1, 17)], "or-01")


def reindexed_equal(system, pseudo):
    before = award_state(system, pseudo)
    with system.redis() as r:
        r.cmd("FLUSHALL")
    for _ in range(2):
        system.run_cli(["reindex"], check=True)
        assert award_state(system, pseudo) == before
    return before


def test_deaccrediting_the_provider_withdraws_the_award_once(system):
    idx, pseudo, cc_index = certified_worker(system)
    r = system.run_cli(["revoke", "--provider", "PRV-0001", "--from", "2025-01-01",
                        "--reason", "PROVIDER_DEACCREDITED"])
    assert r.returncode == 0, r.stdout + r.stderr
    for eid, i in idx.items():
        assert f"entry {i} revoked by entry " in r.stdout, (eid, r.stdout)
    system.wait_for(lambda: revocations_of(system, pseudo, cc_index), what="the award's revocation")
    committed(system, [event("or-other", ni_number="AB123456C")])   # one more round through the pipeline
    (_, crev), = revocations_of(system, pseudo, cc_index)
    assert crev.reason_code == "REQUIREMENT_REVOKED"
    assert award_state(system, pseudo) == ([], [], b"1")
    assert reindexed_equal(system, pseudo) == ([], [], b"1")


def test_operator_revocation_of_the_award_itself(system):
    idx, pseudo, cc_index = certified_worker(system)
    r = system.run_cli(["revoke", str(cc_index), "--reason", "ISSUED_IN_ERROR"])
    assert r.returncode == 0, r.stdout + r.stderr
    (_, rev), = revocations_of(system, pseudo, cc_index)
    assert (rev.provider_id, rev.reason_code) == ("carepass-operator", "ISSUED_IN_ERROR")
    # the award is no longer held and its generation moved on, as reindex has it
    cc, held, gen = award_state(system, pseudo)
    assert len(cc) == 16 and held == [] and gen == b"1"
    # revoking a standard now adds no award revocation (the award is revoked already)
    committed(system, [event("or-03-revoke", ni_number=NI, qualification_code="CC-STD-03",
                             completion_date="2025-03-01", kind="revocation",
                             revokes_event_id="or-03", revocation_reason="ISSUED_IN_ERROR")])
    assert len(revocations_of(system, pseudo, cc_index)) == 1
    # completing it again issues generation 1
    committed(system, [standard(3, "or-03-redo")])
    system.wait_for(lambda: len(awards(system, pseudo)) == 2, what="the re-issued Care Certificate")
    assert awards(system, pseudo)[1][1].provider_event_id == award_id(system, pseudo, 1)
    assert reindexed_equal(system, pseudo)[1:] == ([b"CC"], b"1")


def test_refused_revocation_is_reported_and_retried(system):
    idx, pseudo, cc_index = certified_worker(system)
    target = idx["or-07"]
    with system.redis() as r:   # Redis lost the record's state (not reindexed yet)
        r.cmd("DEL", "cp:ev:{PRV-0001:or-07}")
    size = Register(system.register_dir).size
    r = system.run_cli(["revoke", str(target), "--reason", "FRAUD", "--wait", "20"])
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"entry {target}: revocation refused by verify: REVOKED_EVENT_UNKNOWN" in r.stdout, r.stdout
    assert Register(system.register_dir).size == size
    system.run_cli(["reindex"], check=True)
    r = system.run_cli(["revoke", str(target), "--reason", "FRAUD"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"entry {target} revoked by entry " in r.stdout, r.stdout
    system.wait_for(lambda: revocations_of(system, pseudo, cc_index), what="the award's revocation")
    with system.redis() as red:
        assert red.cmd("SISMEMBER", f"cp:w:{{{pseudo}}}:awards", "CC") == 0


def test_operator_event_on_the_bus_naming_no_event_is_refused(system):
    """verify refuses an operator revocation whose revokes_event_id is not "<provider>:<event id>"."""
    pb = system.internal_pb.PendingEvent(
        provider_id="carepass-operator", provider_event_id="op-revoke-999",
        worker_pseudonym=bytes(32), qualification_code="RF-FIRE",
        kind=system.pb.EVENT_KIND_REVOCATION, revokes_event_id="no-provider-here",
        revocation_reason="OTHER")
    import zmq
    s = system.zctx.socket(zmq.PUSH)
    try:
        s.setsockopt(zmq.LINGER, 1000)
        s.connect(system.bus["VERIFY_IN"])
        s.send(pb.SerializeToString())
    finally:
        s.close()
    system.wait_for(lambda: system.redis().hget("cp:ev:{carepass-operator:op-revoke-999}", "state")
                    == b"rejected", what="the refusal")
    assert system.redis().hget("cp:ev:{carepass-operator:op-revoke-999}", "reason") == b"REVOKED_EVENT_UNKNOWN"
