"""test_security_claims.py -- each security claim of the README / docs/threat-model.md, tested
against the real binaries (issue 10, part 5). Where another test already proves a claim it is named
here instead of repeated:

  1. only registered provider keys are admitted to intake (CurveZMQ + ZAP), and a key removed from
     the registry is refused without a restart, on new and on already-open connections
     -> test_registered_keys_only_and_removed_key_refused_without_restart
        (the unregistered-key case also in intake_smoke.py, part G)
  2. a provider can never submit, correct or revoke for another, over CurveZMQ or HTTP
     -> test_a_provider_cannot_act_for_another
  3. secrets are compared in constant time: a static check of the C sources
     -> test_secret_comparisons_are_constant_time (+ unit.test_token for the token MAC)
  4. private keys and secrets must be 0600 (refused otherwise, with a clear error) and are wiped
     after use -> test_private_key_files_must_be_0600 (signer, intake, gateway, CLI; the loaders
     themselves in unit.test_crypto), test_key_material_is_wiped (static)
  5. no NI number, name, date of birth, token or share code in any log line, logged URL, register
     entry or metric -> test_no_personal_data_in_logs_register_or_metrics (a full flow)
  6. a forged entry, a checkpoint signed by an unknown key and a proof for another tree are refused
     by `carepass verify` and `carepass audit`
     -> test_unknown_key_and_other_tree_refused_by_verify_and_audit; flipped entry bytes and a
        damaged checkpoint signature are in test_offline_verify.py
        (test_tampered_entry_byte_fails_signature_and_inclusion, test_forged_checkpoint_signature_fails,
        test_wrong_vkey_fails) and test_audit_reindex.py
        (test_audit_passes_on_disk_and_over_http_and_fails_on_tampering)
"""

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import zmq

from harness import SOURCE_DIR, CarepassSystem, cli_binary, event
from test_pipeline import DATA, load_ndjson, submit_by_provider

ALL = ("bus", "intake", "verify", "signer", "notify", "gateway")
INTAKE_ONLY = ("bus", "intake", "verify", "signer")


def request(s, method, path, body=None, token=None, headers=None, port=None):
    c = http.client.HTTPConnection("127.0.0.1", port or s.gateway_port, timeout=30)
    try:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def submit_request(s, events, request_id, ack=None):
    req = s.pb.SubmitRequest()
    for e in events:
        req.events.append(s.pb.CompletionEvent(**e))
    req.ack = ack or s.pb.ACK_LEVEL_ACCEPTED
    req.request_id = request_id
    return req.SerializeToString()


def ask(sock, s, data, timeout_ms=5000):
    """Send one SubmitRequest on an open DEALER; the SubmitReply, or None when none came."""
    sock.send(data)
    if not sock.poll(timeout_ms):
        return None
    rep = s.pb.SubmitReply()
    rep.ParseFromString(sock.recv())
    return rep


# ---- 1. registered keys only; a removed key refused without a restart -------------------------

def test_registered_keys_only_and_removed_key_refused_without_restart(tmp_path):
    with CarepassSystem(tmp_path, services=INTAKE_ONLY) as s:
        # an unregistered key never completes the handshake: no answer, nothing stored
        pub, sec = zmq.curve_keypair()
        u = s.zctx.socket(zmq.DEALER)
        u.setsockopt(zmq.LINGER, 0)
        u.curve_publickey, u.curve_secretkey = pub, sec
        u.curve_serverkey = s.intake_public_key().encode()
        u.connect(s.intake_endpoint)
        assert ask(u, s, submit_request(s, [event("u-1")], "u"), timeout_ms=1500) is None
        u.close(linger=0)
        with s.redis() as r:
            assert r.cmd("EXISTS", "cp:ev:{PRV-0001:u-1}") == 0

        # PRV-0002 is admitted, on a connection kept open across the removal
        conn = s.dealer("PRV-0002")
        rep = ask(conn, s, submit_request(s, [event("k-1")], "k1"))
        assert rep is not None and not rep.error_code and rep.replies[0].outcome == s.pb.OUTCOME_ACCEPTED, rep
        intake_pid = s.pid("intake")

        # remove PRV-0002's key from the registry file (atomically, as an operator's tool would)
        reg = json.loads(s.providers_file.read_text())
        for p in reg["providers"]:
            if p["id"] == "PRV-0002":
                del p["curve_public_key"]
        tmp = s.providers_file.with_suffix(".new")
        tmp.write_text(json.dumps(reg, indent=2) + "\n")
        tmp.replace(s.providers_file)

        # the open connection's next requests are refused once intake has looked at the file
        seq = iter(range(1000))

        def refused():
            n = next(seq)
            rep = ask(conn, s, submit_request(s, [event(f"k-late-{n}")], f"late{n}"))
            assert rep is not None
            if rep.error_code:
                assert rep.error_code == "NOT_AUTHENTICATED", rep
                assert "no longer in the provider registry" in rep.error_message
                return n
            return None

        last = s.wait_for(refused, timeout=30, interval=0.2, what="the removed key refused")
        again = ask(conn, s, submit_request(s, [event("k-after")], "after"))
        assert again.error_code == "NOT_AUTHENTICATED", again
        conn.close(linger=0)
        with s.redis() as r:
            assert r.cmd("EXISTS", f"cp:ev:{{PRV-0002:k-late-{last}}}") == 0
            assert r.cmd("EXISTS", "cp:ev:{PRV-0002:k-after}") == 0
        # ... and a new connection with that key gets no answer at all (ZAP refuses it)
        assert s.raw_send(submit_request(s, [event("k-new")], "new"), provider="PRV-0002", timeout=1.5) is None
        # the other providers are untouched, and intake never restarted
        assert s.submit([event("k-2")], provider="PRV-0001", ack="accepted").replies[0].outcome == \
            s.pb.OUTCOME_ACCEPTED
        assert s.pid("intake") == intake_pid and s.running("intake")
        assert "provider registry reloaded" in s.log_text("intake")

        # a registry file that does not load leaves the one in force
        s.providers_file.write_text("{ not json")
        s.wait_for(lambda: "does not load" in s.log_text("intake"), timeout=30, what="the bad file noticed")
        assert s.submit([event("k-3")], provider="PRV-0001", ack="accepted").replies[0].outcome == \
            s.pb.OUTCOME_ACCEPTED
        assert s.running("intake")


# ---- 2. a provider can never act for another --------------------------------------------------

def test_a_provider_cannot_act_for_another(tmp_path):
    with CarepassSystem(tmp_path, services=ALL, extra_env={"CAREPASS_ACK_TIMEOUT_MS": 15000}) as s:
        mine = s.submit([event("own-1", ni_number="AB123456C"), event("own-2", ni_number="AB123456C",
                                                                       qualification_code="RF-SAFEG")],
                        provider="PRV-0001").replies
        assert all(r.outcome == s.pb.OUTCOME_COMMITTED for r in mine), mine
        own, own2 = mine
        rev = dict(ni_number="AB123456C", qualification_code="RF-FIRE", completion_date="2025-03-03",
                   kind="revocation", revocation_reason="ISSUED_IN_ERROR")

        # over CurveZMQ, as PRV-0002
        rep = s.submit([event("x-1", provider_id="PRV-0001"),
                        event("x-rev-1", revokes_event_id="own-2", **rev),
                        event("x-rev-2", revokes_event_id="PRV-0001:own-2", **rev),
                        event("own-1", ni_number="CE654321A", completion_date="2025-04-04")],
                       provider="PRV-0002")
        by = {r.provider_event_id: r for r in rep.replies}
        assert by["x-1"].outcome == s.pb.OUTCOME_REJECTED and by["x-1"].reason_code == "PROVIDER_MISMATCH"
        for rid in ("x-rev-1", "x-rev-2"):
            assert by[rid].outcome == s.pb.OUTCOME_REJECTED and by[rid].reason_code == "REVOKED_EVENT_UNKNOWN", by[rid]
        # the same event id is PRV-0002's own event, not a correction of PRV-0001's
        assert by["own-1"].outcome == s.pb.OUTCOME_COMMITTED and by["own-1"].entry_index != own.entry_index
        # (and revoking it revokes PRV-0002's own record, never PRV-0001's of the same id)

        # over HTTP, with PRV-0002's token
        tok = s.provider_token("PRV-0002")
        st, b = request(s, "POST", "/v1/events?ack=committed",
                        [event("h-1", provider_id="PRV-0001"),
                         event("h-rev-1", revokes_event_id="own-2", **rev),
                         event("h-rev-2", revokes_event_id="PRV-0001:own-2", **rev)], token=tok)
        assert st == 200, b
        hb = {r["provider_event_id"]: r for r in json.loads(b)["replies"]}
        assert hb["h-1"]["outcome"] == "rejected" and hb["h-1"]["reason_code"] == "PROVIDER_MISMATCH"
        for rid in ("h-rev-1", "h-rev-2"):
            assert hb[rid]["outcome"] == "rejected" and hb[rid]["reason_code"] == "REVOKED_EVENT_UNKNOWN", hb[rid]

        # PRV-0001's record stands: a resend still gets its own answer, nothing revoked it
        again = s.submit([event("own-1", ni_number="AB123456C")], provider="PRV-0001").replies[0]
        assert again.outcome == s.pb.OUTCOME_COMMITTED and again.entry_index == own.entry_index
        with s.redis() as r:
            assert "revoked_index" not in r.hgetall("cp:ev:{PRV-0001:own-1}")
            assert "revoked_index" not in r.hgetall("cp:ev:{PRV-0001:own-2}")
        from register_check import Register
        reg = Register(s.register_dir)
        for i in range(reg.size):
            pe = reg.passport_entry(i, s.register_pb)
            assert not (pe.entry_type == s.register_pb.ENTRY_TYPE_REVOCATION and
                        pe.revokes_index in (own.entry_index, own2.entry_index))
            if i in (own.entry_index, own2.entry_index):
                assert pe.provider_id == "PRV-0001"


# ---- 3. constant-time comparisons (static) ----------------------------------------------------

# Comparison calls that are NOT constant time, and words that mark an argument as secret or
# secret-derived (token, MAC/tag, secret, share code and its hash, date of birth and its hash,
# signatures, passwords).
NOT_CT = re.compile(r"\b(memcmp|strcmp|strncmp|bcmp|strcasecmp|strncasecmp)\s*\(([^;]*)")
SECRETISH = re.compile(r"secret|token|\btag\b|\bmac\b|code_hash|share_code|\bdob|dh\b|password|\bsig\b",
                       re.IGNORECASE)
# Reviewed uses whose arguments only look secret: (file, text in the call) -> why it is fine.
ALLOWED = {
    ("common/token.c", "memcmp(token, prefix"): "the token's 4-byte kind prefix is public",
    ("common/token.c", "strncmp(token, kinds[k].prefix"): "the token's 4-byte kind prefix is public",
    ("common/register_checkpoint.c", "memcmp(sig, ck->kid"): "a public key id in a signature line",
    ("common/token_revoke.c", "CP_TOKEN_ID_BYTES"): "token ids are public (printed, in the revocation list)",
}
STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')


def c_sources():
    for top in ("common", "services", "tools"):
        for p in sorted((SOURCE_DIR / top).rglob("*.c")):
            yield p


def test_secret_comparisons_are_constant_time():
    bad = []
    for path in c_sources():
        rel = str(path.relative_to(SOURCE_DIR))
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for m in NOT_CT.finditer(line):
                args = STRING_LITERAL.sub('""', m.group(2))   # a literal like "secret=" is a label
                if not SECRETISH.search(args):
                    continue
                if any(rel == f and snippet in line for (f, snippet) in ALLOWED):
                    continue
                bad.append(f"{rel}:{n}: {line.strip()}")
    assert not bad, "secret-looking values compared with a non-constant-time function:\n" + "\n".join(bad)
    # and the places that do compare secrets use the constant-time primitives
    token = (SOURCE_DIR / "common" / "token.c").read_text()
    assert "crypto_auth_verify(" in token
    share_open = (SOURCE_DIR / "services" / "gateway" / "gw_share_open.c").read_text()
    assert share_open.count("sodium_memcmp(") >= 2   # the date-of-birth hash and the hint cache


# ---- 4. key files 0600 and wiped ----------------------------------------------------------------

def test_private_key_files_must_be_0600(tmp_path):
    with CarepassSystem(tmp_path, services=ALL) as s:
        cases = [("signer", s.keys_dir / "signer.key"),
                 ("intake", s.keys_dir / "intake.curve"),
                 ("gateway", s.keys_dir / "token.secret"),
                 ("gateway", s.keys_dir / "share-code.secret")]
        for svc, key in cases:
            assert key.exists(), key
            assert key.stat().st_mode & 0o777 == 0o600, key
            s.kill(svc, signal.SIGTERM)
            s.wait_exit(svc)
            key.chmod(0o644)
            try:
                s.start_service(svc)
                rc = s.wait_exit(svc, timeout=30)
                assert rc != 0, (svc, key)
                tail = s.log_tail(svc, 10)
                assert str(key) in tail and "mode 0644" in tail and "chmod 600" in tail, tail
            finally:
                key.chmod(0o600)
            s.start_service(svc)
            s.wait_healthy(svc)
        # the CLI refuses too
        tok = s.keys_dir / "token.secret"
        tok.chmod(0o644)
        try:
            cp = s.run_cli(["provider-token", "PRV-0001"])
            assert cp.returncode == 1 and "mode 0644" in cp.stderr and "chmod 600" in cp.stderr, cp.stderr
        finally:
            tok.chmod(0o600)
        assert s.run_cli(["provider-token", "PRV-0001"]).returncode == 0


def test_key_material_is_wiped():
    """Static: every file that loads a private key or secret also wipes key material
    (sodium_memzero / cp_signkey_wipe); crypto.c's loaders wipe their own buffers. This is a
    floor, not a proof: the review notes are in docs/threat-model.md."""
    loaders = re.compile(r"\b(cp_secret_load|cp_curve_load|cp_signkey_load)\s*\(")
    wipes = re.compile(r"\b(sodium_memzero|cp_signkey_wipe)\s*\(")
    missing = []
    for path in c_sources():
        text = path.read_text(errors="replace")
        if loaders.search(text) and not wipes.search(text):
            missing.append(str(path.relative_to(SOURCE_DIR)))
    assert not missing, f"loads key material but never wipes any: {missing}"


# ---- 5. no personal data in logs, register or metrics ------------------------------------------

def test_no_personal_data_in_logs_register_or_metrics(tmp_path):
    names = ["Dr Jane Example-Worker", "Sunny Days Care Home Ltd"]   # self-declared employer labels
    dobs = {"AB123456C": "1961-07-14", "CE654321A": "1958-12-09"}
    with CarepassSystem(tmp_path, services=ALL, extra_env={"CAREPASS_ACK_TIMEOUT_MS": 15000}) as s:
        # providers submit over CurveZMQ (the sample data) and HTTP
        samples = load_ndjson(DATA / "sample-events.ndjson") + load_ndjson(DATA / "sample-revocations.ndjson")
        nis = {e["ni_number"] for e in samples}
        answers = submit_by_provider(s, samples)
        assert answers
        ptok = s.provider_token("PRV-0001")
        http_ni = "JG103759A"
        nis.add(http_ni)
        st, b = request(s, "POST", "/v1/events?ack=committed",
                        [event("pii-h-1", ni_number=http_ni, completion_date="2025-02-02")], token=ptok)
        assert st == 200 and json.loads(b)["replies"][0]["outcome"] == "committed", b
        # workers sign in (worker token), make share codes; employers check and subscribe
        etok = s.run_cli(["employer-token", "EMP-0001"], check=True).stdout.strip()
        tokens, codes = [ptok, etok], []
        for ni, dob in dobs.items():
            wtok = s.run_cli(["worker-token", ni], check=True).stdout.strip()
            tokens.append(wtok)
            st, b = request(s, "POST", "/v1/share-codes", {"date_of_birth": dob, "allow_subscriptions": True},
                            token=wtok)
            assert st == 201, b
            code = json.loads(b)["code"]
            codes += [code, code.replace("-", "")]
            st, b = request(s, "POST", "/v1/check", {"share_code": code, "date_of_birth": dob,
                                                     "employer": names[0]},
                            headers={"User-Agent": names[1]})
            assert st == 200, b
            st, b = request(s, "POST", "/v1/check", {"share_code": code.lower(), "date_of_birth": "1900-01-01"})
            assert st == 404, b  # a wrong date of birth is logged as a failure, without the values
            st, b = request(s, "POST", "/v1/subscriptions", {"share_code": code, "date_of_birth": dob,
                                                             "url": "http://127.0.0.1:9/hook",
                                                             "employer": names[1]})
            assert st == 201, b
            tokens.append(json.loads(b)["secret"])          # the subscription's webhook secret
            # a registered employer checks and subscribes with its token (cpe_...)
            st, b = request(s, "POST", "/v1/check", {"share_code": code, "date_of_birth": dob}, token=etok)
            assert st == 200, b
            st, b = request(s, "POST", "/v1/check", {"share_code": code, "date_of_birth": "1900-01-01"},
                            token=etok)
            assert st == 404, b
            st, b = request(s, "POST", "/v1/subscriptions", {"share_code": code, "date_of_birth": dob,
                                                             "url": "http://127.0.0.1:9/employer-hook"},
                            token=etok)
            assert st == 201, b
            tokens.append(json.loads(b)["secret"])
            st, b = request(s, "GET", "/v1/subscriptions", token=etok)
            assert st == 200, b
            st, b = request(s, "GET", "/v1/views", token=wtok)
            assert st == 200, b
        # a token in a URL and a code in a query string (misuse) must not be logged either
        wtok0 = next(t for t in tokens if t.startswith("cpw_"))
        request(s, "GET", f"/v1/share-codes?token={wtok0}&code={codes[0]}", token=wtok0)
        st, metrics = request(s, "GET", "/metrics", port=s.metrics_port)  # the operator listener
        assert st == 200 and b"carepass_" in metrics
        s.stop()

        logs = {p.name: p.read_bytes() for p in sorted(s.log_dir.rglob("*")) if p.is_file()}
        register = {str(p.relative_to(s.register_dir)): p.read_bytes()
                    for p in sorted(s.register_dir.rglob("*")) if p.is_file()}
        assert {"intake.log", "gateway.log", "notify.log"} <= set(logs) and any(logs.values())
        assert any(k.startswith("tile/entries/") for k in register), sorted(register)
        places = [("log " + k, v) for k, v in logs.items()] + [("register " + k, v) for k, v in register.items()]
        places.append(("/metrics", metrics))
        needles = set(nis) | {ni[:2] + " " + ni[2:4] + " " + ni[4:6] + " " + ni[6:8] + " " + ni[8] for ni in nis}
        needles |= set(dobs.values()) | set(names) | set(tokens) | set(codes)
        needles |= {t[4:] for t in tokens}                   # a token without its prefix
        found = [f"{n!r} in {where}" for where, data in places for n in needles if n.encode() in data]
        assert not found, "personal data or credentials found:\n" + "\n".join(found)


# ---- 6. verify and audit refuse an unknown key and a proof for another tree ---------------------

def resign_with_unknown_key(note_text):
    """The checkpoint note signed, validly, by a fresh Ed25519 key with the same name."""
    from nacl.signing import SigningKey
    body, _, sigs = note_text.partition("\n\n")
    name = sigs.split("\n")[0].split(" ")[1]
    sk = SigningKey.generate()
    pk = sk.verify_key.encode()
    kid = hashlib.sha256(name.encode() + b"\n\x01" + pk).digest()[:4]
    sig = sk.sign((body + "\n").encode()).signature
    return body + "\n\n" + f"\u2014 {name} " + base64.b64encode(kid + sig).decode() + "\n"


def test_unknown_key_and_other_tree_refused_by_verify_and_audit(tmp_path):
    with CarepassSystem(tmp_path / "sys", services=INTAKE_ONLY, extra_env={"CAREPASS_ACK_TIMEOUT_MS": 15000}) as s:
        first = s.submit([event(f"t-{i}") for i in range(3)]).replies
        assert all(r.outcome == s.pb.OUTCOME_COMMITTED for r in first)
        proof = tmp_path / "early.tlog-proof"
        s.run_cli(["proof", first[1].entry_index, "--out", proof], check=True)
        later = s.submit([event(f"t-late-{i}") for i in range(5)]).replies
        assert all(r.outcome == s.pb.OUTCOME_COMMITTED for r in later)
        env = dict(s.env)
    vkey = tmp_path / "sys" / "register" / "vkey"
    env["CAREPASS_REDIS_PORT"] = "1"   # offline: nothing there

    def cli(*args):
        return subprocess.run([str(cli_binary()), *map(str, args)], env=env, capture_output=True, text=True,
                              timeout=120)

    at = ("--at", "2025-06-01")   # the records' validity date (completed 2025-03-03, a year valid)
    ok = cli("verify", proof, "--vkey", vkey, *at)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    text = proof.read_text()
    head, sep, checkpoint = text.partition("\n\n")
    assert sep and "\n\n" in checkpoint, text   # c2sp tlog-proof: header lines, blank line, signed note

    # the proof's checkpoint re-signed by an unknown key
    forged = tmp_path / "unknown-key.tlog-proof"
    forged.write_text(head + "\n\n" + resign_with_unknown_key(checkpoint))
    cp = cli("verify", forged, "--vkey", vkey, *at)
    assert cp.returncode == 1 and "NOT VERIFIED" in cp.stdout, cp.stdout + cp.stderr
    assert "checkpoint signature: failed" in cp.stdout, cp.stdout

    # a proof for another tree: the early inclusion path against the later (genuine) checkpoint
    other = tmp_path / "other-tree.tlog-proof"
    other.write_text(head + "\n\n" + (tmp_path / "sys" / "register" / "checkpoint").read_text())
    cp = cli("verify", other, "--vkey", vkey, *at)
    assert cp.returncode == 1 and "inclusion: failed" in cp.stdout, cp.stdout + cp.stderr

    # audit: a register whose checkpoint is signed by an unknown key
    mirror = tmp_path / "mirror"
    shutil.copytree(tmp_path / "sys" / "register", mirror)
    (mirror / "checkpoint").write_text(resign_with_unknown_key((mirror / "checkpoint").read_text()))
    good = cli("audit", tmp_path / "sys" / "register", "--vkey", vkey)
    assert good.returncode == 0 and "AUDIT PASSED" in good.stdout, good.stdout + good.stderr
    cp = cli("audit", mirror, "--vkey", vkey)
    assert cp.returncode == 1 and "AUDIT FAILED" in cp.stdout, cp.stdout + cp.stderr
    assert "checkpoint signature: failed" in cp.stdout, cp.stdout
