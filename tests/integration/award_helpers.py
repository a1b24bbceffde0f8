"""award_helpers.py -- what the derived-award tests share (test_award_revocation.py,
test_operator_revocation.py): submitting events that must commit, and reading one worker's
entries, awards and revocations straight from the register (register_check.py) through the
worker's Redis index."""

from register_check import Register
from subject_check import worker_of

REVOCATION = 2      # register.proto ENTRY_TYPE_REVOCATION
DERIVED_AWARD = 3   # register.proto ENTRY_TYPE_DERIVED_AWARD


def committed(system, evs):
    """Submit evs and assert every one committed; {provider event id: register index}."""
    rep = system.submit(evs)
    for r in rep.replies:
        assert r.outcome == system.pb.OUTCOME_COMMITTED, (r.provider_event_id, r.reason_code, r.message)
    return {r.provider_event_id: r.entry_index for r in rep.replies}


def pseudonym_of(system, index):
    """The worker pseudonym (hex) of register entry `index`."""
    return worker_of(system, Register(system.register_dir).passport_entry(index, system.register_pb)).hex()


def certify(system, standards, first_id):
    """Commit the 16 standards, wait for the Care Certificate; (indexes by event id, the worker's
    pseudonym, the award's register index). first_id names one of the standards' event ids."""
    idx = committed(system, standards)
    pseudo = pseudonym_of(system, idx[first_id])
    system.wait_for(lambda: len(awards(system, pseudo)) == 1, what="the Care Certificate")
    return idx, pseudo, awards(system, pseudo)[0][0]


def entries(system, pseudo):
    """(index, PassportEntry) of the worker's entries, in register order."""
    reg = Register(system.register_dir)
    with system.redis() as r:
        idx = sorted(int(x) for x in r.lrange(f"cp:w:{{{pseudo}}}:entries"))
    return [(i, reg.passport_entry(i, system.register_pb)) for i in idx if i < reg.size]


def awards(system, pseudo):
    """The worker's Care Certificate award entries."""
    return [(i, pe) for i, pe in entries(system, pseudo)
            if pe.qualification_code == "CC" and pe.entry_type == DERIVED_AWARD]


def revocations_of(system, pseudo, index):
    """The worker's revocation entries that revoke register index `index`."""
    return [(i, pe) for i, pe in entries(system, pseudo)
            if pe.entry_type == REVOCATION and pe.revokes_index == index]
