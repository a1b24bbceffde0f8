"""test_subject_register.py -- register entry format 2 (issue 11): the public register names no
worker, and nothing in it links two entries of one worker; the operator's subject key store and
the derived Redis state still know whose entry is whose, and reindex rebuilds that from the
register and the store alone.

Checked with implementations that are not ours: Python's hashlib for the commitment and
python3-nacl (libsodium's XChaCha20-Poly1305 through its own bindings) for the sealed openings,
read straight from the store's files as an auditor of the operator would.
"""

import hashlib
import signal
from collections import Counter

import pytest

from award_helpers import award_id, award_revoke_id, committed
from harness import event
from register_check import Register
from subject_check import open_sealed, store_keys

NI_A, NI_B = "AB123456C", "JG103759A"
SUBJECT_DOMAIN = b"carepass/subject/v1\n"
OPENING_DOMAIN = b"carepass/opening/v1\n"
RECORD, REVOCATION, DERIVED_AWARD, KEY = 1, 2, 3, 4


def pseudonym(system, ni):
    secret = bytes.fromhex((system.keys_dir / "pseudonym.secret").read_text().strip())
    return hashlib.blake2b(b"carepass/worker/v1\n" + ni.encode(), digest_size=32, key=secret).digest()


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


# ---- the employer's side: a scoped check, its bundle, offline verify, the public log ------------

def http_request(system, method, path, body=None, token=None):
    import http.client
    import json
    c = http.client.HTTPConnection("127.0.0.1", system.gateway_port, timeout=30)
    try:
        h = {"Content-Type": "application/json"}
        if token:
            h["Authorization"] = f"Bearer {token}"
        c.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def public_entries(system):
    """Every entry as anyone reads it: through the gateway's public /log/ (tiles, not files)."""
    st, note = http_request(system, "GET", "/log/checkpoint")
    assert st == 200
    size = int(note.split(b"\n")[1])
    out = []
    for n in range((size + 255) // 256):
        full = n < size // 256
        assert n < 1000   # a small test log: tile paths of one element
        path = "/log/tile/entries/%03d" % n
        if not full:
            path += ".p/%d" % (size % 256)
        st, data = http_request(system, "GET", path)
        assert st == 200, path
        pos = 0
        while pos < len(data):
            ln = int.from_bytes(data[pos:pos + 2], "big")
            se = system.register_pb.SignedEntry.FromString(data[pos + 2:pos + 2 + ln])
            out.append(system.register_pb.PassportEntry.FromString(se.entry))
            pos += 2 + ln
    return out


DOB = "1990-04-12"


@pytest.mark.carepass(extra_env={"CAREPASS_ENTRY_FORMAT": "2"},
                      services=("bus", "intake", "verify", "signer", "notify", "gateway"))
def test_format_2_scoped_check_bundle_and_offline_verify(system, tmp_path):
    import json
    rep = system.submit([event("s-%d" % i, ni_number=NI_A, qualification_code=q, completion_date="2026-05-0%d" % (i + 1))
                         for i, q in enumerate(("RF-FIRE", "RF-SAFEG", "RF-HS"))]
                        + [event("o-1", ni_number=NI_B, qualification_code="RF-FIRE")])
    assert all(x.outcome == system.pb.OUTCOME_COMMITTED for x in rep.replies), rep
    idx = {x.provider_event_id: x.entry_index for x in rep.replies}
    tok = system.run_cli(["worker-token", NI_A, "--days", "2"], check=True).stdout.strip()
    st, b = http_request(system, "POST", "/v1/share-codes", {"date_of_birth": DOB, "entries": [idx["s-1"]]}, tok)
    assert st == 201, b
    code = json.loads(b)["code"]

    # the check: the one record in scope, authentic (the gateway opened it with the worker's r)
    st, b = http_request(system, "POST", "/v1/check", {"share_code": code, "date_of_birth": DOB})
    assert st == 200, b
    p = json.loads(b)
    assert [r["index"] for r in p["records"]] == [idx["s-1"]]
    assert p["verification"]["authentic"] is True, p["verification"]

    # the bundle carries the opening of that entry only, and verifies offline
    st, bundle = http_request(system, "POST", "/v1/check/bundle", {"share_code": code, "date_of_birth": DOB})
    assert st == 200, bundle
    lines = bundle.split(b"\n")
    assert lines[0] == b"carepass-passport/v2"
    openings = [l for l in lines if l.startswith(b"opening ")]
    assert len(openings) == 1 and openings[0].split(b" ")[1] == str(idx["s-1"]).encode()
    f = tmp_path / "check.carepass"
    f.write_bytes(bundle)
    vkey = system.register_dir / "vkey"
    ok = system.run_cli(["verify", str(f), "--vkey", str(vkey)])
    assert ok.returncode == 0, ok.stdout + ok.stderr

    # hostile bundles: a wrong opening, none, and one for an entry the bundle does not hold
    rhex = openings[0].split(b" ")[2]
    bad_r = bundle.replace(rhex, (b"0" if rhex[:1] != b"0" else b"1") + rhex[1:])
    none = bundle.replace(openings[0] + b"\n", b"")
    extra = bundle.replace(b"\nend\n", b"\nopening 999999 " + rhex + b"\nend\n")
    for name, text, why in (("bad_r", bad_r, "does not open to the bundle's worker"),
                            ("none", none, "no opening for this entry"),
                            ("extra", extra, "which it does not hold")):
        g = tmp_path / f"{name}.carepass"
        g.write_bytes(text)
        out = system.run_cli(["verify", str(g), "--vkey", str(vkey)])
        assert out.returncode != 0 and why in out.stdout, (name, out.stdout)

    # the worker's own passport bundle: every entry, each with its opening
    pf = tmp_path / "passport.carepass"
    system.run_cli(["passport", NI_A, "--out", str(pf)], check=True)
    text = pf.read_bytes()
    assert text.startswith(b"carepass-passport/v2\n") and text.count(b"\nopening ") == 3
    out = system.run_cli(["verify", str(pf), "--vkey", str(vkey)])
    assert out.returncode == 0, out.stdout + out.stderr

    # a bundle that mixes two subjects: worker B's entry, with B's own true opening, spliced into
    # A's passport (same checkpoint): every signature and proof holds, yet it is not A's entry
    pb_ = tmp_path / "passport-b.carepass"
    system.run_cli(["passport", NI_B, "--out", str(pb_)], check=True)
    a_items, a_open = bundle_parts(text)
    b_items, b_open = bundle_parts(pb_.read_bytes())
    b_entry = [blk for blk in b_items if blk.startswith(b"proof entry ")]
    assert len(b_entry) == 1 and len(b_open) == 1
    mixed = a_items[0] + b"".join(a_items[1:] + b_entry) + b"".join(a_open + b_open) + b"end\n"
    g = tmp_path / "mixed.carepass"
    g.write_bytes(mixed)
    out = system.run_cli(["verify", str(g), "--vkey", str(vkey)])
    assert out.returncode != 0 and f"entry {idx['o-1']} worker: failed" in out.stdout, out.stdout
    assert "does not open to the bundle's worker" in out.stdout and "NOT VERIFIED" in out.stdout
    assert out.stdout.count("worker: failed") == 1   # A's own entries still open to A

    # the attack of issue 11: with what the check gave (the worker's pseudonym, one opening), the
    # public log shows nothing else of the worker -- not before, and not after the code is
    # withdrawn and new records are made
    worker = [l for l in lines if l.startswith(b"worker ")][0].split(b" ")[1].decode()
    pseud = bytes.fromhex(worker)
    st, b = http_request(system, "GET", "/v1/share-codes", token=tok)
    cid = json.loads(b)["share_codes"][0]["id"]
    assert http_request(system, "DELETE", f"/v1/share-codes/{cid}", token=tok)[0] in (200, 204)
    rep = system.submit([event("s-new", ni_number=NI_A, qualification_code="RF-EDI")])
    assert rep.replies[0].outcome == system.pb.OUTCOME_COMMITTED
    known_r = bytes.fromhex(rhex.decode())
    for i, pe in enumerate(public_entries(system)):
        raw = pe.SerializeToString()
        assert pseud not in raw and worker.encode() not in raw
        if pe.subject:   # only the shared entry opens with what the employer holds
            opens = hashlib.blake2b(SUBJECT_DOMAIN + pseud + known_r, digest_size=32).digest() == pe.subject
            assert opens == (i == idx["s-1"]), i


def bundle_parts(text):
    """A carepass-passport/v2 bundle as (blocks, opening lines): blocks[0] is everything up to and
    with the checkpoint block, then one "proof ..." header and its bytes each."""
    blocks, openings, at = [], [], 0
    def line():
        nonlocal at
        end = text.index(b"\n", at) + 1
        ln, at = text[at:end], end
        return ln
    head = line() + line()                       # version, worker
    ln = line()                                  # checkpoint <N>
    n = int(ln.split(b" ")[1])
    head += ln + text[at:at + n]
    at += n
    blocks.append(head)
    while True:
        ln = line()
        if ln.startswith(b"proof "):
            n = int(ln.split(b" ")[2])
            blocks.append(ln + text[at:at + n])
            at += n
        elif ln.startswith(b"opening "):
            openings.append(ln)
        else:
            assert ln == b"end\n", ln
            return blocks, openings


@pytest.mark.carepass(extra_env={"CAREPASS_ENTRY_FORMAT": "2"},
                      services=("bus", "intake", "verify", "signer", "notify", "gateway"))
def test_leaving_shreds_the_link(system):
    import json
    rep = system.submit([event("l-1", ni_number=NI_A, qualification_code="RF-FIRE", completion_date="2026-06-01"),
                         event("l-2", ni_number=NI_A, qualification_code="RF-SAFEG", completion_date="2026-06-02"),
                         event("k-1", ni_number=NI_B, qualification_code="RF-FIRE", completion_date="2026-06-03")])
    assert all(x.outcome == system.pb.OUTCOME_COMMITTED for x in rep.replies), rep
    idx = {x.provider_event_id: x.entry_index for x in rep.replies}
    pa, pb_ = pseudonym(system, NI_A), pseudonym(system, NI_B)
    tok = system.run_cli(["worker-token", NI_A, "--days", "2"], check=True).stdout.strip()
    st, b = http_request(system, "POST", "/v1/share-codes", {"date_of_birth": DOB}, tok)
    assert st == 201, b
    code = json.loads(b)["code"]
    slots_before = store_keys(system)
    a_slots = {pe.subject_slot for i, pe in entries(system) if i in (idx["l-1"], idx["l-2"])}
    assert a_slots <= set(slots_before)

    # the store has one writer: not while the signer runs
    busy = system.run_cli(["leave", NI_A])
    assert busy.returncode != 0 and "stop the shard's signer" in busy.stderr, busy.stderr
    system.kill("signer", signal.SIGTERM)
    system.wait_exit("signer")
    out = system.run_cli(["leave", NI_A], check=True)
    assert "2 entries can no longer be opened or linked" in out.stdout, out.stdout
    assert NI_A not in out.stdout + out.stderr

    # gone from the store's files (nobody can open or link them), and from Redis
    after = store_keys(system)
    assert not (a_slots & set(after)) and len(after) == len(slots_before) - 2
    with system.redis() as r:
        assert r.keys("cp:w:{%s}:*" % pa.hex()) == []
        assert r.cmd("EXISTS", "cp:exp:{%d}" % idx["l-1"]) == 0
        assert r.keys("cp:w:{%s}:*" % pb_.hex()) != []
    st, b = http_request(system, "POST", "/v1/check", {"share_code": code, "date_of_birth": DOB})
    assert st != 200

    # the register is untouched and still audits; reindex rebuilds B, and nothing of A
    system.start_service("signer")
    system.wait_healthy("signer")
    audit = system.run_cli(["audit", str(system.register_dir), "--vkey", str(system.register_dir / "vkey")])
    assert audit.returncode == 0, audit.stdout + audit.stderr
    with system.redis() as r:
        r.cmd("FLUSHALL")
    system.run_cli(["reindex"], check=True)
    with system.redis() as r:
        assert r.keys("cp:w:{%s}:*" % pa.hex()) == []
        assert [int(x) for x in r.lrange("cp:w:{%s}:entries" % pb_.hex())] == [idx["k-1"]]
        assert r.hget("cp:ev:{PRV-0001:l-1}", "state") == b"committed"   # the record is still valid
    # the worker can come back: a new record gets a new key; the old entries stay unlinkable
    rep = system.submit([event("l-3", ni_number=NI_A, qualification_code="RF-HS", completion_date="2026-06-04")])
    assert rep.replies[0].outcome == system.pb.OUTCOME_COMMITTED
    with system.redis() as r:
        assert [int(x) for x in r.lrange("cp:w:{%s}:entries" % pa.hex())] == [rep.replies[0].entry_index]
    # an operator revocation of an entry of the worker who left names no one: its subject opens for
    # nobody (nothing new in the store), and no "worker" gathers such revocations in Redis
    n_keys = len(store_keys(system))
    out = system.run_cli(["revoke", str(idx["l-2"]), "--reason", "ISSUED_IN_ERROR"])
    assert out.returncode == 0, out.stdout + out.stderr
    rev_index = int(out.stdout.split(f"entry {idx['l-2']} revoked by entry ")[1].split()[0])
    pe = dict(entries(system))[rev_index]
    assert pe.entry_type == REVOCATION and pe.revokes_index == idx["l-2"] and len(pe.subject) == 32
    assert not pe.worker_pseudonym and pe.subject_slot not in store_keys(system)
    assert len(store_keys(system)) == n_keys       # nothing new in the store
    zero = "00" * 32
    with system.redis() as r:
        assert r.keys("cp:w:{%s}:*" % zero) == []
        assert r.hget("cp:ev:{PRV-0001:l-2}", "revoked_by") is not None


@pytest.mark.carepass(extra_env={"CAREPASS_ENTRY_FORMAT": "1"},
                      services=("bus", "intake", "verify", "signer", "notify", "gateway"))
def test_format_1_is_still_written_and_read(system, tmp_path):
    """A register not yet migrated: format 1 entries, v1 bundles, the same checks."""
    import json
    rep = system.submit([event("v1-1", ni_number=NI_A, qualification_code="RF-FIRE", completion_date="2026-06-01")])
    assert rep.replies[0].outcome == system.pb.OUTCOME_COMMITTED
    i = rep.replies[0].entry_index
    pe = dict(entries(system))[i]
    assert pe.version == 1 and pe.worker_pseudonym == pseudonym(system, NI_A) and pe.subject == b""
    assert not (system.keys_dir / "subject-keys").exists()   # no store is made for format 1
    tok = system.run_cli(["worker-token", NI_A, "--days", "2"], check=True).stdout.strip()
    st, b = http_request(system, "POST", "/v1/share-codes", {"date_of_birth": DOB}, tok)
    code = json.loads(b)["code"]
    st, b = http_request(system, "POST", "/v1/check", {"share_code": code, "date_of_birth": DOB})
    assert st == 200 and json.loads(b)["verification"]["authentic"] is True
    st, bundle = http_request(system, "POST", "/v1/check/bundle", {"share_code": code, "date_of_birth": DOB})
    assert st == 200 and bundle.startswith(b"carepass-passport/v1\n") and b"\nopening " not in bundle
    f = tmp_path / "v1.carepass"
    f.write_bytes(bundle)
    out = system.run_cli(["verify", str(f), "--vkey", str(system.register_dir / "vkey")])
    assert out.returncode == 0, out.stdout


@pytest.mark.carepass(extra_env={"CAREPASS_ENTRY_FORMAT": "1"})
def test_migrate_a_format_1_register(system, tmp_path):
    """carepass migrate: today's format-1 register rewritten as format 2 under a new origin; the
    old one audits as before; reindex on the new one rebuilds every worker's index."""
    rep = system.submit([event("m-1", ni_number=NI_A, qualification_code="RF-FIRE", completion_date="2026-06-01"),
                         event("m-2", ni_number=NI_A, qualification_code="RF-SAFEG", completion_date="2026-06-02"),
                         event("n-1", ni_number=NI_B, qualification_code="RF-FIRE", completion_date="2026-06-03")])
    assert all(x.outcome == system.pb.OUTCOME_COMMITTED for x in rep.replies), rep
    rev = system.submit([event("m-2r", ni_number=NI_A, qualification_code="RF-SAFEG", completion_date="2026-06-02",
                               kind="revocation", revokes_event_id="m-2", revocation_reason="ISSUED_IN_ERROR")])
    assert rev.replies[0].outcome == system.pb.OUTCOME_COMMITTED
    old = entries(system)
    assert all(pe.version == 1 for _, pe in old)
    system.kill("signer", signal.SIGTERM)
    system.wait_exit("signer")
    new_dir = tmp_path / "register-v2"
    new_key = system.keys_dir / "signer-v2.key"
    out = system.run_cli(["migrate", "--to", new_dir, "--origin", "carepass.local/register-v2", "--key", new_key],
                         check=True)
    assert "migrated 4 entries" in out.stdout, out.stdout
    # the old register is as it was, and still audits
    assert entries(system) == old
    a = system.run_cli(["audit", system.register_dir, "--vkey", system.register_dir / "vkey"])
    assert a.returncode == 0, a.stdout + a.stderr
    # the new one: format 2, every record at a known place, the revocation pointing at its target
    reg = Register(new_dir)
    assert reg.verify_checkpoint() and reg.root() == reg.checkpoint_root and reg.origin == "carepass.local/register-v2"
    new = [(i, reg.passport_entry(i, system.register_pb)) for i in range(reg.size)]
    by_event = {pe.provider_event_id: (i, pe) for i, pe in new if pe.entry_type != KEY}
    assert set(by_event) == {"m-1", "m-2", "n-1", "m-2r"}
    slots = store_keys(system)
    for eid, (i, pe) in by_event.items():
        assert pe.version == 2 and pe.worker_pseudonym == b""
        want = pseudonym(system, NI_B if eid == "n-1" else NI_A)
        assert open_sealed(pe, slots)[0] == want
    assert by_event["m-2r"][1].revokes_index == by_event["m-2"][0]
    assert b"carepass.local/register" in (new_dir / "migrated-from").read_bytes()
    a = system.run_cli(["audit", new_dir, "--vkey", new_dir / "vkey"])
    assert a.returncode == 0, a.stdout + a.stderr
    # Redis rebuilt from the new register: each worker's entries at their new indexes
    env = {"CAREPASS_REGISTER_DIR": new_dir, "CAREPASS_LOG_ORIGIN": "carepass.local/register-v2",
           "CAREPASS_SIGNING_KEY": new_key}
    with system.redis() as r:
        r.cmd("FLUSHALL")
    system.run_cli(["reindex"], env=env, check=True)
    li, rs = worker_state(system, pseudonym(system, NI_A).hex())
    assert sorted(li) == sorted(by_event[e][0] for e in ("m-1", "m-2", "m-2r")) and sorted(rs) == sorted(li)
    pf = tmp_path / "a.carepass"
    system.run_cli(["passport", NI_A, "--out", pf], env=env, check=True)
    v = system.run_cli(["verify", pf, "--vkey", new_dir / "vkey"], env=env)
    # every signature, inclusion and opening passes; the one failure is the revoked record's
    assert "NOT VERIFIED: 1 check(s) failed" in v.stdout, v.stdout
    assert f"entry {by_event['m-2'][0]} revocation: failed" in v.stdout
    assert " worker: failed" not in v.stdout and "signature: failed" not in v.stdout
    # a second migration into the same place is refused, as is reusing the origin
    again = system.run_cli(["migrate", "--to", new_dir, "--origin", "x.example/r", "--key", new_key])
    assert again.returncode == 2 and "exists" in again.stderr


@pytest.mark.carepass(extra_env={"CAREPASS_ENTRY_FORMAT": "1"})
def test_a_register_of_both_formats(system, tmp_path):
    """A signer switched to format 2 on a format-1 register without migrating: both are read, the
    passport verifies, and leaving says which entries still name the worker."""
    one = system.submit([event("x-1", ni_number=NI_A, qualification_code="RF-FIRE", completion_date="2026-06-01")])
    assert one.replies[0].outcome == system.pb.OUTCOME_COMMITTED
    system.restart("signer", extra_env={"CAREPASS_ENTRY_FORMAT": "2"})
    two = system.submit([event("x-2", ni_number=NI_A, qualification_code="RF-SAFEG", completion_date="2026-06-02")])
    assert two.replies[0].outcome == system.pb.OUTCOME_COMMITTED
    got = dict(entries(system))
    assert got[one.replies[0].entry_index].version == 1 and got[two.replies[0].entry_index].version == 2
    pf = tmp_path / "mixed.carepass"
    out = system.run_cli(["passport", NI_A, "--out", pf], check=True)
    assert "every signature and inclusion proof checked ok" in out.stdout, out.stdout
    text = pf.read_bytes()
    assert text.count(b"\nopening ") == 1   # the format-2 entry only
    v = system.run_cli(["verify", pf, "--vkey", system.register_dir / "vkey"])
    assert v.returncode == 0, v.stdout
    system.kill("signer", signal.SIGTERM)
    system.wait_exit("signer")
    left = system.run_cli(["leave", NI_A], check=True)
    assert "1 entries can no longer be opened" in left.stdout and "1 format-1 entries still name" in left.stdout, left.stdout


@pytest.mark.carepass(extra_env={"CAREPASS_ENTRY_FORMAT": "2"})
def test_format_2_award_ids_do_not_name_the_worker(system):
    """carepass's own derived awards (the Care Certificate) and their revocations carry keyed event
    ids: none contains any 16-hex piece of the worker's pseudonym (which an employer given one
    opening learns), and the award's generations do not share a tag."""
    def std(i, eid=None):
        return event(eid or f"aw-{i:02d}", ni_number=NI_A, qualification_code=f"CC-STD-{i:02d}",
                     completion_date="2025-02-01", assessor_id="ASR-1")

    def carepass_entries():
        return [(i, pe) for i, pe in entries(system) if pe.provider_id == "carepass"]

    committed(system, [std(i) for i in range(1, 17)])
    system.wait_for(lambda: len(carepass_entries()) == 1, what="the Care Certificate")
    committed(system, [event("aw-05-revoke", ni_number=NI_A, qualification_code="CC-STD-05",
                             completion_date="2025-02-01", kind="revocation", revokes_event_id="aw-05",
                             revocation_reason="ISSUED_IN_ERROR")])
    system.wait_for(lambda: len(carepass_entries()) == 2, what="the award's revocation")
    committed(system, [std(5, "aw-05-redo")])
    system.wait_for(lambda: len(carepass_entries()) == 3, what="the re-issued Care Certificate")

    hexp = pseudonym(system, NI_A).hex()
    pieces = {hexp[k:k + 16] for k in range(len(hexp) - 15)}
    got = carepass_entries()
    for _, pe in got:
        assert pe.version == 2 and not pe.worker_pseudonym, pe
        assert not any(piece in pe.provider_event_id for piece in pieces), pe.provider_event_id
    aw = [pe.provider_event_id for _, pe in got if pe.entry_type == DERIVED_AWARD]
    revs = [pe.provider_event_id for _, pe in got if pe.entry_type == REVOCATION]
    assert aw == [award_id(system, hexp, 0), award_id(system, hexp, 1)]
    assert revs == [award_revoke_id(aw[0])]
    tag0, tag1 = aw[0].split(":")[2], aw[1].split(":")[2]
    assert tag0.startswith("k") and tag1.startswith("k") and len(tag0) == len(tag1) == 33
    assert tag0 != tag1 and not aw[1].startswith(aw[0])   # generations share no prefix but the code
