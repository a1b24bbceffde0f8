"""test_offline_verify.py -- an employer or auditor checks a downloaded passport bundle or a
tlog-proof with `carepass verify`, offline: Redis stopped, no service running.
"""

import base64
import datetime
import re
import subprocess

import pytest

from harness import cli_binary
from test_pipeline import DATA, load_ndjson, submit_by_provider

WORKER2 = "CE654321A"   # sample worker with an expiring record and a revoked one


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """Run the system once, submit the samples, write a passport bundle and a proof, stop everything."""
    from harness import CarepassSystem
    d = tmp_path_factory.mktemp("offline")
    s = CarepassSystem(d)
    try:
        answers = submit_by_provider(s, load_ndjson(DATA / "sample-events.ndjson"))
        answers.update(submit_by_provider(s, load_ndjson(DATA / "sample-revocations.ndjson")))
        s.run_cli(["passport", WORKER2, "--out", d / "w2.passport"], check=True)
        idx = answers["w1-cc-std-03"].entry_index
        s.run_cli(["proof", idx, "--out", d / "p.tlog-proof"], check=True)
    finally:
        s.stop()
    assert s.redis_proc is None or s.redis_proc.poll() is not None, "Redis must be stopped"
    return {"dir": d, "answers": answers, "vkey": d / "register" / "vkey", "env": s.env, "proof_index": idx}


def verify(o, path, *extra, vkey=None):
    env = {k: v for k, v in o["env"].items() if k != "CAREPASS_REDIS_PORT"}
    env["CAREPASS_REDIS_PORT"] = "1"   # nothing there: verify must not need Redis
    return subprocess.run([str(cli_binary()), "verify", str(path), "--vkey", str(vkey or o["vkey"]), *extra],
                          env=env, capture_output=True, text=True, timeout=60)


def idx(o, event_id):
    return o["answers"][event_id].entry_index


def test_passport_bundle_verifies_offline(offline):
    cp = verify(offline, offline["dir"] / "w2.passport", "--at", "2025-06-01")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "checkpoint signature: passed" in cp.stdout
    assert "key history: passed" in cp.stdout
    assert ": failed" not in cp.stdout
    n = idx(offline, "w2-rf-ipc-2024")
    assert f"entry {n} signature: passed" in cp.stdout
    assert f"entry {n} inclusion: passed" in cp.stdout
    assert re.search(rf"Record {n} \(.*PRV-0005, completed 2024-06-03\) was valid on 2025-06-01", cp.stdout)
    assert cp.stdout.rstrip().endswith("0 not established.")


def test_single_tlog_proof_verifies_and_is_in_c2sp_format(offline):
    text = (offline["dir"] / "p.tlog-proof").read_text()
    lines = text.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    assert lines[1].startswith("extra ")
    assert lines[2] == f"index {offline['proof_index']}"
    cp = verify(offline, offline["dir"] / "p.tlog-proof")
    assert cp.returncode == 0, cp.stdout
    assert "revocation: not established" in cp.stdout


def rewrite(o, name, change):
    src = (o["dir"] / "w2.passport").read_bytes()
    out = o["dir"] / name
    out.write_bytes(change(src))
    return out


def blocks(data):
    """Split a passport bundle into (header line, block) pairs."""
    pos, out = data.index(b"\n") + 1, []
    pos = data.index(b"\n", pos) + 1
    while True:
        end = data.index(b"\n", pos)
        head = data[pos:end]
        if head == b"end":
            return out
        if head.startswith(b"opening "):   # v2: an opening line, no block
            pos = end + 1
            continue
        n = int(head.split()[-1])
        out.append((head, data[end + 1:end + 1 + n], end + 1))
        pos = end + 1 + n


def test_tampered_entry_byte_fails_signature_and_inclusion(offline):
    target = idx(offline, "w2-rf-ipc-2024")

    def change(data):
        for head, blk, at in blocks(data):
            if f"\nindex {target}\n".encode() in blk:
                m = re.search(rb"extra ([A-Za-z0-9+/=]+)\n", blk)
                raw = bytearray(base64.b64decode(m.group(1)))
                raw[-70] ^= 1   # inside the PassportEntry bytes (the signature is the last 64)
                new = blk.replace(m.group(1), base64.b64encode(bytes(raw)))
                assert len(new) == len(blk)
                return data[:at] + new + data[at + len(blk):]
        raise AssertionError("entry not found")

    cp = verify(offline, rewrite(offline, "t-entry.passport", change), "--at", "2025-06-01")
    assert cp.returncode == 1
    assert f"entry {target} signature: failed" in cp.stdout
    assert f"entry {target} inclusion: failed" in cp.stdout
    assert "NOT VERIFIED" in cp.stdout


def test_tampered_proof_hash_fails_inclusion_only(offline):
    target = idx(offline, "w2-rf-med-2025")

    def change(data):
        for head, blk, at in blocks(data):
            if f"\nindex {target}\n".encode() in blk:
                lines = blk.split(b"\n")
                i = lines.index(f"index {target}".encode()) + 1
                h = bytearray(base64.b64decode(lines[i]))
                h[0] ^= 0xff
                lines[i] = base64.b64encode(bytes(h))
                new = b"\n".join(lines)
                return data[:at] + new + data[at + len(blk):]
        raise AssertionError("entry not found")

    cp = verify(offline, rewrite(offline, "t-proof.passport", change), "--at", "2025-06-01")
    assert cp.returncode == 1
    assert f"entry {target} signature: passed" in cp.stdout
    assert f"entry {target} inclusion: failed" in cp.stdout


def test_forged_checkpoint_signature_fails(offline):
    def change(data):
        text = data.decode()
        m = re.search(r"\n\u2014 (\S+) (\S+)\n", text)
        sig = base64.b64decode(m.group(2))
        forged = base64.b64encode(sig[:4] + bytes(64)).decode()
        return text.replace(m.group(2), forged).encode()

    cp = verify(offline, rewrite(offline, "t-cp.passport", change), "--at", "2025-06-01")
    assert cp.returncode == 1
    assert "checkpoint signature: failed" in cp.stdout


def test_wrong_vkey_fails(offline):
    vk = offline["dir"] / "other.vkey"
    # a well-formed vkey of another key with the same name
    from nacl.signing import SigningKey
    import hashlib
    pk = SigningKey.generate().verify_key.encode()
    name = offline["vkey"].read_text().split("+")[0]
    kid = hashlib.sha256(name.encode() + b"\n\x01" + pk).digest()[:4].hex()
    blob = base64.b64encode(b"\x01" + pk).decode()
    vk.write_text(f"{name}+{kid}+{blob}\n")
    cp = verify(offline, offline["dir"] / "w2.passport", "--at", "2025-06-01", vkey=vk)
    assert cp.returncode == 1
    assert "key history: failed" in cp.stdout or "checkpoint signature: failed" in cp.stdout


def test_validity_on_a_date(offline):
    f = offline["dir"] / "w2.passport"
    med, bls = idx(offline, "w2-rf-med-2025"), idx(offline, "w2-rf-bls-2025")
    # before completion (RF-MED completed 2025-04-22)
    cp = verify(offline, f, "--at", "2025-01-01")
    assert cp.returncode == 1
    assert f"entry {med} completion: failed (completed 2025-04-22, after 2025-01-01)" in cp.stdout
    assert re.search(rf"Record {med} .* was NOT established as valid on 2025-01-01: it was completed only on 2025-04-22",
                     cp.stdout)
    # after valid_until (RF-MED valid until 2026-04-22)
    cp = verify(offline, f, "--at", "2026-05-01")
    assert f"entry {med} expiry: failed (expired: valid until 2026-04-22, before 2026-05-01)" in cp.stdout
    # after the revocation (issued today): revoked; before it: valid
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    cp = verify(offline, f, "--at", today)
    assert re.search(rf"entry {bls} revocation: failed \(revoked by entry \d+ \(ISSUED_IN_ERROR\)", cp.stdout)
    assert re.search(rf"Record {bls} .* it was revoked by entry \d+ \(ISSUED_IN_ERROR\)", cp.stdout)
    cp = verify(offline, f, "--at", "2025-06-01")
    assert re.search(rf"entry {bls} revocation: passed \(revoked by entry \d+ .* only on", cp.stdout)


def test_bad_input_is_refused_clearly(offline):
    bad = offline["dir"] / "garbage.passport"
    bad.write_bytes(b"carepass-passport/v1\nworker zz\n")
    cp = verify(offline, bad)
    assert cp.returncode == 1 and "bundle format: failed" in cp.stdout
    trunc = offline["dir"] / "trunc.passport"
    trunc.write_bytes((offline["dir"] / "w2.passport").read_bytes()[:-200])
    cp = verify(offline, trunc)
    assert cp.returncode == 1 and "truncated" in cp.stdout
