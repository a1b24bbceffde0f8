"""test_key_rotation.py -- `carepass rotate-key`: key entries in the log, a handover checkpoint
signed by both keys, entries verified with the key valid for their index (independent reader)."""

import os
import signal
import stat
from pathlib import Path

from harness import event
from register_check import ENTRY_DOMAIN, ENTRY_TYPE_KEY, NO_END, Register, key_id_of

import nacl.signing


def stop_signer(system):
    system.kill("signer", signal.SIGTERM)
    system.wait_exit("signer")


def start_signer(system):
    system.start_service("signer")
    system.wait_healthy("signer")


def commit(system, ids, ni="AB123456C"):
    rep = system.submit([event(i, ni_number=ni, qualification_code="RF-FIRE",
                               completion_date="2025-03-03") for i in ids])
    assert all(r.outcome == system.pb.OUTCOME_COMMITTED for r in rep.replies), rep
    return [r.entry_index for r in rep.replies]


def test_rotate_key_end_to_end(system):
    pb = system.register_pb
    # a new register starts with its genesis key entry, signed by the key it announces
    reg = Register(system.register_dir)
    assert reg.size >= 1
    pe0 = reg.passport_entry(0, pb)
    assert pe0.entry_type == ENTRY_TYPE_KEY and len(pe0.key_public) == 32
    first = commit(system, ["kr-1", "kr-2", "kr-3"])
    assert min(first) >= 1

    # rotate-key refuses while the signer holds the shard lock
    busy = system.run_cli(["rotate-key"])
    assert busy.returncode != 0
    assert "locked" in busy.stderr and "stop the shard's signer" in busy.stderr, busy.stderr

    stop_signer(system)
    keyfile = system.keys_dir / "signer.key"
    old_vkey = (system.register_dir / "vkey").read_text().strip()
    size_before = Register(system.register_dir).size
    rot = system.run_cli(["rotate-key"])
    assert rot.returncode == 0, rot.stdout + rot.stderr
    handover = size_before          # the key entry is appended at the old size

    reg = Register(system.register_dir)
    assert reg.size == handover + 1
    spans = reg.key_history(pb)
    assert len(spans) == 2
    old, new = spans
    assert (old.first, old.last) == (0, handover)
    assert (new.first, new.last) == (handover + 1, NO_END)
    assert new.key_index == handover
    # the handover checkpoint carries both signatures, the origin stays the key name
    assert reg.checkpoint_signers() == {old.key_id, new.key_id}
    assert len([l for l in reg.signature_lines if l.startswith("\u2014 ")]) == 2
    assert reg.origin == old.name == new.name
    # vkeys lists every key, oldest first; vkey is the new one
    vkeys = (system.register_dir / "vkeys").read_text().split()
    assert vkeys[0] == old_vkey and len(vkeys) == 2
    assert (system.register_dir / "vkey").read_text().strip() == vkeys[1]
    # the old key file is retired (0600), the new key is in place (0600)
    retired = keyfile.with_name(f"signer.key.retired-{old.key_id.hex()}")
    assert retired.exists()
    assert stat.S_IMODE(os.stat(retired).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(keyfile).st_mode) == 0o600
    assert key_id_of(new.name, new.public_key).hex() in keyfile.read_text()

    # starting the signer with the retired key is refused
    os.rename(keyfile, str(keyfile) + ".hold")
    os.rename(retired, keyfile)
    system.start_service("signer")
    assert system.wait_exit("signer") != 0
    assert "not the register's current key" in system.log_text("signer")
    os.rename(keyfile, retired)
    os.rename(str(keyfile) + ".hold", keyfile)

    start_signer(system)
    later = commit(system, ["kr-4", "kr-5"])
    assert min(later) > handover

    reg = Register(system.register_dir)
    assert reg.verify_checkpoint()
    assert reg.root() == reg.checkpoint_root
    spans = reg.key_history(pb)
    for i in range(reg.size):
        assert reg.verify_entry_history(i, pb, spans), f"entry {i}"
        se = reg.signed_entry(i, pb)
        want = spans[0] if i <= handover else spans[1]
        assert bytes(se.key_id) == want.key_id, i
    # after the new key's first checkpoint only the new key signs
    assert reg.checkpoint_signers() == {spans[1].key_id}

    # an entry signed by the OLD key at an index after the rotation is refused
    seed = old_seed(retired)
    forged_pe = reg.passport_entry(later[0], pb)
    forged_pe.provider_event_id = "forged"
    body = forged_pe.SerializeToString()
    se = pb.SignedEntry(entry=body, key_id=spans[0].key_id,
                        signature=nacl.signing.SigningKey(seed).sign(ENTRY_DOMAIN + body).signature)
    assert not reg.verify_entry_history(later[0], pb, spans, raw=se.SerializeToString())
    # ...though the same bytes would pass at an index the old key covered
    assert reg.verify_entry_history(1, pb, spans, raw=se.SerializeToString())

    # the C auditor follows the key history too
    audit = system.run_cli(["audit", system.register_dir, "--vkey", system.register_dir / "vkey"])
    assert audit.returncode == 0, audit.stdout + audit.stderr

    # a forged copy of the register: the old key signs an entry after the rotation
    forged_dir = system.dir / "forged"
    forge_register(system.register_dir, forged_dir, pb, seed, spans[0].key_id, later[0])
    bad = system.run_cli(["audit", forged_dir, "--vkey", forged_dir / "vkey"])
    assert bad.returncode != 0, bad.stdout + bad.stderr
    assert f"entry {later[0]} is signed by a key that is not valid at" in bad.stdout + bad.stderr, bad.stdout


def forge_register(src, dst, pb, seed, old_key_id, index):
    """Copy a register, re-sign entry `index` with the retired key, and rebuild the tiles and a
    checkpoint signed by the current (new) key, so only the key-validity check can catch it.
    Uses the C writer's own layout through register_check's helpers (single partial tile)."""
    import base64
    import hashlib
    import shutil
    from register_check import merkle_root, leaf_hash, tile_index_path
    shutil.copytree(src, dst)
    reg = Register(dst)
    assert reg.size < 256, "test registers stay within one tile"
    se = pb.SignedEntry()
    se.ParseFromString(reg.entries[index])
    se.key_id = old_key_id
    se.signature = nacl.signing.SigningKey(seed).sign(ENTRY_DOMAIN + se.entry).signature
    entries = list(reg.entries)
    entries[index] = se.SerializeToString()
    n = len(entries)
    bundle = b"".join(len(e).to_bytes(2, "big") + e for e in entries)
    (dst / "tile" / "entries" / (tile_index_path(0) + f".p/{n}")).write_bytes(bundle)
    leaves = [leaf_hash(e) for e in entries]
    (dst / "tile" / "0" / (tile_index_path(0) + f".p/{n}")).write_bytes(b"".join(leaves))
    root = merkle_root(leaves)
    body = f"{reg.origin}\n{n}\n{base64.b64encode(root).decode()}\n".encode()
    keyfile = Path(src).parent / "keys" / "signer.key"
    new_seed = old_seed(keyfile)
    name = reg.origin
    pk = nacl.signing.SigningKey(new_seed).verify_key.encode()
    kid = hashlib.sha256(name.encode() + b"\n\x01" + pk).digest()[:4]
    sig = nacl.signing.SigningKey(new_seed).sign(body).signature
    note = body + b"\n" + f"\u2014 {name} ".encode() + base64.b64encode(kid + sig) + b"\n"
    (dst / "checkpoint").write_bytes(note)



def old_seed(path):
    """The Ed25519 seed in a note signer key file PRIVATE+KEY+<name>+<id>+<base64(0x01||seed)>."""
    import base64
    text = path.read_text().strip()
    raw = base64.b64decode(text.split("+", 4)[4])
    assert raw[0] == 1 and len(raw) == 33
    return raw[1:]


def test_rotate_key_refusals(system):
    # a register directory that does not exist
    r = system.run_cli(["rotate-key", "--dir", str(system.dir / "nowhere")])
    assert r.returncode != 0 and "no checkpoint" in r.stderr, r.stderr
    # a key file that is not the register's current key
    stop_signer(system)
    other = system.dir / "other.key"
    gen = system.run_cli(["rotate-key", "--key", str(other)])
    assert gen.returncode != 0 and "no such key file" in gen.stderr, gen.stderr
    ok = system.run_cli(["rotate-key"])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    again = system.run_cli(["rotate-key"])   # rotating twice in a row is fine: a third key
    assert again.returncode == 0, again.stdout + again.stderr
    reg = Register(system.register_dir)
    spans = reg.key_history(system.register_pb)
    assert len(spans) == 3
    assert spans[1].first == spans[1].key_index + 1 == spans[1].last  # signed only its handover
    assert len((system.register_dir / "vkeys").read_text().split()) == 3
    start_signer(system)
    commit(system, ["kr-x"])
    reg = Register(system.register_dir)
    spans = reg.key_history(system.register_pb)
    assert all(reg.verify_entry_history(i, system.register_pb, spans) for i in range(reg.size))


def test_passport_after_rotation(system):
    """carepass passport checks each entry with the key valid at its index."""
    commit(system, ["pr-1"])
    stop_signer(system)
    assert system.run_cli(["rotate-key"]).returncode == 0
    start_signer(system)
    commit(system, ["pr-2"])
    pp = system.run_cli(["passport", "AB123456C"])
    assert pp.returncode == 0, pp.stdout + pp.stderr
    assert "FAILED" not in pp.stdout, pp.stdout
