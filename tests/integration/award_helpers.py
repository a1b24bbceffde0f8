"""award_helpers.py -- what the derived-award tests share (test_award_revocation.py,
test_operator_revocation.py): submitting events that must commit, and reading one worker's
entries, awards and revocations straight from the register (register_check.py) through the
worker's Redis index."""

from register_check import Register

REVOCATION = 2      # register.proto ENTRY_TYPE_REVOCATION
DERIVED_AWARD = 3   # register.proto ENTRY_TYPE_DERIVED_AWARD


def committed(system, evs):
    """Submit evs and assert every one committed; {provider event id: register index}."""
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
    """The worker's Care Certificate award entries."""
    return [(i, pe) for i, pe in entries(system, pseudo)
            if pe.qualification_code == "CC" and pe.entry_type == DERIVED_AWARD]


def revocations_of(system, pseudo, index):
    """The worker's revocation entries that revoke register index `index`."""
    return [(i, pe) for i, pe in entries(system, pseudo)
            if pe.entry_type == REVOCATION and pe.revokes_index == index]
