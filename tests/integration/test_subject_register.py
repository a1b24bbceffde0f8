"""test_subject_register.py -- register entry format 2 (issue 11): the public register names no
worker, and nothing in it links two entries of one worker; the operator's subject key store and
the derived Redis state still know whose entry is whose, and reindex rebuilds that from the
register and the store alone.

Checked with implementations that are not ours: Python's hashlib for the commitment and
python3-nacl (libsodium's XChaCha20-Poly1305 through its own bindings) for the sealed openings,
read straight from the store's files as an auditor of the operator would.
"""

import hashlib
from collections import Counter

import nacl.bindings
import pytest

from harness import event
from register_check import Register

NI_A, NI_B = "AB123456C", "JG103759A"
SUBJECT_DOMAIN = b"carepass/subject/v1\n"
OPENING_DOMAIN = b"carepass/opening/v1\n"
RECORD, REVOCATION, KEY = 1, 2, 4


def pseudonym(system, ni):
    secret = bytes.fromhex((system.keys_dir / "pseudonym.secret").read_text().strip())
    return hashlib.blake2b(b"carepass/worker/v1\n" + ni.encode(), digest_size=32, key=secret).digest()


def store_keys(system):
    """slot -> worker key, from the subject key store's files (cp_subject.h)."""
    d = system.keys_dir / "subject-keys"
    w = (d / "workers").read_bytes()
    s = (d / "slots").read_bytes()
    wm, sm = b"carepass-subject-workers/v1\n", b"carepass-subject-slots/v1\n"
    assert w.startswith(wm) and s.startswith(sm)
    w, s = w[len(wm):], s[len(sm):]
    keys = {w[i:i + 16]: w[i + 16:i + 48] for i in range(0, len(w), 48)}
    return {s[i:i + 16]: keys[s[i + 16:i + 32]] for i in range(0, len(s), 32)}


def open_sealed(pe, slots):
    key = slots[pe.subject_slot]
    nonce, ct = pe.sealed_opening[:24], pe.sealed_opening[24:]
    plain = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
        ct, OPENING_DOMAIN + pe.subject + pe.subject_slot, nonce, key)
    return plain[:32], plain[32:]


def entries(system):
    reg = Register(system.register_dir)
    assert reg.verify_checkpoint() and reg.root() == reg.checkpoint_root
    return [(i, reg.passport_entry(i, system.register_pb)) for i in range(reg.size)]


def worker_state(system, hexp):
    with system.redis() as r:
        idx = [int(x) for x in r.lrange(f"cp:w:{{{hexp}}}:entries")]
        rs = {int(k): v.decode() for k, v in r.hgetall(f"cp:w:{{{hexp}}}:r").items()}
    return idx, rs


@pytest.mark.carepass(extra_env={"CAREPASS_ENTRY_FORMAT": "2"})
def test_format_2_register_links_nothing_and_reindex_rebuilds(system):
    evs = [event("a-1", ni_number=NI_A, qualification_code="RF-FIRE", completion_date="2026-06-01"),
           event("a-2", ni_number=NI_A, qualification_code="RF-SAFEG"),
           event("a-3", ni_number=NI_A, qualification_code="RF-HS"),
           event("b-1", ni_number=NI_B, qualification_code="RF-FIRE"),
           event("b-2", ni_number=NI_B, qualification_code="RF-SAFEG")]
    rep = system.submit(evs)
    assert all(x.outcome == system.pb.OUTCOME_COMMITTED for x in rep.replies), rep
    idx = {x.provider_event_id: x.entry_index for x in rep.replies}
    rev = system.submit([event("a-2r", ni_number=NI_A, qualification_code="RF-SAFEG", kind="revocation",
                               revokes_event_id="a-2", revocation_reason="ISSUED_IN_ERROR")])
    assert rev.replies[0].outcome == system.pb.OUTCOME_COMMITTED, rev
    idx["a-2r"] = rev.replies[0].entry_index

    pa, pb_ = pseudonym(system, NI_A), pseudonym(system, NI_B)
    ents = [(i, pe) for i, pe in entries(system) if pe.entry_type != KEY]
    assert len(ents) == 6
    # the public register: format 2, no pseudonym, and no value repeated across entries that
    # could tell two of them belong to one worker
    seen = Counter()
    for i, pe in ents:
        assert pe.version == 2 and pe.worker_pseudonym == b""
        assert len(pe.subject) == 32 and len(pe.subject_slot) == 16 and len(pe.sealed_opening) == 104
        raw = pe.SerializeToString()
        assert pa not in raw and pb_ not in raw and pa.hex().encode() not in raw
        seen.update([pe.subject, pe.subject_slot, pe.sealed_opening[:24]])
    assert max(seen.values()) == 1, "a subject, slot or nonce repeats"

    # the operator's store opens each entry to its worker (python3-nacl), and each opening is
    # the entry's commitment (hashlib)
    slots = store_keys(system)
    owner = {}
    for i, pe in ents:
        p, r = open_sealed(pe, slots)
        assert hashlib.blake2b(SUBJECT_DOMAIN + p + r, digest_size=32).digest() == pe.subject
        owner[i] = p
    assert {owner[idx[e]] for e in ("a-1", "a-2", "a-3", "a-2r")} == {pa}
    assert {owner[idx[e]] for e in ("b-1", "b-2")} == {pb_}

    # derived state: each worker's index with the r of every entry, which opens it
    live = {}
    for p in (pa, pb_):
        li, rs = worker_state(system, p.hex())
        assert sorted(li) == sorted(rs) and set(li) == {i for i in owner if owner[i] == p}
        for i, rhex in rs.items():
            pe = dict(ents)[i]
            assert hashlib.blake2b(SUBJECT_DOMAIN + p + bytes.fromhex(rhex), digest_size=32).digest() == pe.subject
        live[p] = (sorted(li), rs)
    with system.redis() as r:
        assert r.hget("cp:ev:{PRV-0001:a-2}", "revoked_by") == b"a-2r"
        assert r.cmd("EXISTS", "cp:exp:{%d}" % idx["a-1"]) == 1

    # reindex from the register and the store alone
    with system.redis() as r:
        r.cmd("FLUSHALL")
    out = system.run_cli(["reindex"], check=True)
    assert "reindexed" in out.stdout
    for p in (pa, pb_):
        li, rs = worker_state(system, p.hex())
        assert (sorted(li), rs) == live[p]
    with system.redis() as r:
        assert r.hget("cp:ev:{PRV-0001:a-2}", "revoked_by") == b"a-2r"
        assert r.hget("cp:ev:{PRV-0001:b-1}", "state") == b"committed"

    # a restarted signer keeps the store (same workers, more slots) and appends format 2
    system.restart("signer")
    rep = system.submit([event("a-4", ni_number=NI_A, qualification_code="RF-IPC")])
    assert rep.replies[0].outcome == system.pb.OUTCOME_COMMITTED
    i4 = rep.replies[0].entry_index
    pe4 = dict(entries(system))[i4]
    assert pe4.version == 2 and open_sealed(pe4, store_keys(system))[0] == pa
    assert i4 in worker_state(system, pa.hex())[0]
