"""award_helpers.py -- what the derived-award tests share (test_award_revocation.py,
test_operator_revocation.py): submitting events that must commit, and reading one worker's
entries, awards and revocations straight from the register (register_check.py) through the
worker's Redis index; and the derived award's event ids, computed here from the award-tag secret
the services made (an implementation of the tag apart from carepass's, common/projection.c)."""

import re

import nacl.encoding
import nacl.hash

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


AWARD_TAG_DOMAIN = b"carepass/award/v1\n"


def award_tag_secret(system):
    """The 32-byte award-tag secret verify made at its first start (CAREPASS_AWARD_TAG_SECRET)."""
    with open(system.env["CAREPASS_AWARD_TAG_SECRET"]) as f:
        return bytes.fromhex(f.read().strip())


def award_id(system, pseudo, gen=0, code="CC"):
    """The keyed event id verify issues for generation `gen` of the worker's award `code`:
    award:<code>:k<BLAKE2b-128 keyed with the secret over domain || code || "\n" || pseudonym ||
    gen as 8 bytes big-endian>, then ":g<gen>" for gen > 0."""
    msg = AWARD_TAG_DOMAIN + code.encode() + b"\n" + bytes.fromhex(pseudo) + gen.to_bytes(8, "big")
    tag = nacl.hash.blake2b(msg, digest_size=16, key=award_tag_secret(system),
                            encoder=nacl.encoding.HexEncoder).decode()
    return f"award:{code}:k{tag}" + (f":g{gen}" if gen else "")


def legacy_award_id(pseudo, gen=0, code="CC"):
    """The event id awards had before keyed ids: the first 16 hex of the pseudonym."""
    return f"award:{code}:{pseudo[:16]}" + (f":g{gen}" if gen else "")


def award_revoke_id(aid):
    """The revocation id of award `aid`, either style: strip "award:" and any ":g<n>", then
    "award-revoke:" + that + ":" + gen."""
    m = re.fullmatch(r"award:(.+?)(?::g([1-9][0-9]*))?", aid)
    assert m, aid
    return f"award-revoke:{m.group(1)}:{m.group(2) or 0}"


def award_key(system, pseudo, gen=0):
    """The cp:ev key of the worker's keyed Care Certificate of generation `gen`."""
    return f"cp:ev:{{carepass:{award_id(system, pseudo, gen)}}}"
