"""test_tokens.py -- bearer token ids, the revocation list and the share-code secret against a
running system: `carepass token revoke` (by id or by the whole token) makes the gateway refuse that
one token from its next request on, without a restart (the gateway's pid is unchanged), while other
tokens keep working; the list is durable (a restarted gateway still refuses) and holds ids only;
the CLI's lifetime bounds; and rotating CAREPASS_TOKEN_SECRET voids every token but leaves live
share codes working (they are keyed with CAREPASS_SHARE_CODE_SECRET)."""

import datetime
import http.client
import json
import re
import signal
import stat

from harness import CarepassSystem, event

SERVICES = ("bus", "intake", "verify", "signer", "notify", "gateway")
NI, DOB = "CE654321A", "1990-11-02"   # test data, never logged
ID_RE = re.compile(r"token id: ([0-9a-f]{32})")


def day(offset):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)).isoformat()


def request(s, method, path, body=None, token=None):
    c = http.client.HTTPConnection("127.0.0.1", s.gateway_port, timeout=30)
    try:
        h = {"User-Agent": "test-tokens/1"}
        if token:
            h["Authorization"] = f"Bearer {token}"
        if body is not None:
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def err_code(b):
    return json.loads(b)["error"]["code"]


def make_token(s, args):
    cp = s.run_cli(args, check=True)
    m = ID_RE.search(cp.stderr)
    assert m, cp.stderr
    return cp.stdout.strip(), m.group(1)


def post_event(s, token, pid):
    return request(s, "POST", "/v1/events?ack=accepted", [event(pid)], token=token)


def test_revoked_token_refused_without_restart(tmp_path):
    with CarepassSystem(tmp_path, services=SERVICES) as s:
        tok, tid = make_token(s, ["provider-token", "PRV-0001", "--days", "30"])
        other, other_id = make_token(s, ["provider-token", "PRV-0001"])
        assert tid != other_id
        st, b = post_event(s, tok, "rv-1")
        assert st == 200, b
        # `token id` reads the id back from the token
        cp = s.run_cli(["token", "id", tok], check=True)
        assert cp.stdout.split()[:2] == [tid, "provider"]

        pid = s.pid("gateway")
        cp = s.run_cli(["token", "revoke", tid], check=True)
        assert "revoked" in cp.stdout and tid in cp.stdout
        st, b = post_event(s, tok, "rv-2")
        assert st == 401 and err_code(b) == "TOKEN_REVOKED", b
        st, b = post_event(s, other, "rv-3")       # one by one: the other token still works
        assert st == 200, b
        assert s.pid("gateway") == pid and s.running("gateway")
        again = s.run_cli(["token", "revoke", tid.upper()], check=True)
        assert "already revoked" in again.stdout

        # the list: ids only, 0600
        listing = s.keys_dir / "revoked-tokens"
        text = listing.read_text()
        assert tid in text and "PRV-0001" not in text and tok not in text
        assert stat.S_IMODE(listing.stat().st_mode) == 0o600

        # a worker token revoked by giving the whole token
        wtok, wid = make_token(s, ["worker-token", NI, "--hours", "2"])
        st, b = request(s, "GET", "/v1/share-codes", token=wtok)
        assert st == 200, b
        s.run_cli(["token", "revoke", wtok], check=True)
        assert wid in listing.read_text()
        st, b = request(s, "GET", "/v1/share-codes", token=wtok)
        assert st == 401 and err_code(b) == "TOKEN_REVOKED", b

        # bad input to the CLI, and its lifetime bounds
        assert s.run_cli(["token", "revoke", "nope"]).returncode == 2
        assert s.run_cli(["token", "revoke", "cpp_garbage"]).returncode == 1
        assert s.run_cli(["provider-token", "PRV-0001", "--days", "366"]).returncode == 2
        assert s.run_cli(["provider-token", "PRV-0001", "--days", "3650"]).returncode == 2
        assert s.run_cli(["worker-token", NI, "--hours", "73"]).returncode == 2
        assert s.run_cli(["worker-token", NI, "--days", "30"]).returncode == 2

        # durable: a restarted gateway reads the list at start
        s.restart("gateway")
        st, b = post_event(s, tok, "rv-4")
        assert st == 401 and err_code(b) == "TOKEN_REVOKED", b
        st, b = post_event(s, other, "rv-5")
        assert st == 200, b

        log = s.log_text("gateway")
        assert "revoked token refused" in log and tid in log
        for secret in (tok, other, wtok, NI):
            assert secret not in log


def test_rotating_token_secret_keeps_share_codes(tmp_path):
    with CarepassSystem(tmp_path, services=SERVICES, extra_env={"CAREPASS_ACK_TIMEOUT_MS": 15000}) as s:
        rep = s.submit([event("sc-1", ni_number=NI, qualification_code="RF-FIRE", completion_date=day(-10))])
        assert rep.replies[0].outcome == s.pb.OUTCOME_COMMITTED, rep
        index = rep.replies[0].entry_index
        wtok, _ = make_token(s, ["worker-token", NI, "--hours", "4"])
        st, b = request(s, "POST", "/v1/share-codes", {"date_of_birth": DOB}, token=wtok)
        assert st == 201, b
        code = json.loads(b)["code"]
        st, b = request(s, "POST", "/v1/check", {"share_code": code, "date_of_birth": DOB})
        assert st == 200, b
        assert [r["index"] for r in json.loads(b)["records"]] == [index]

        token_secret = s.keys_dir / "token.secret"
        share_secret = s.keys_dir / "share-code.secret"
        assert share_secret.exists() and stat.S_IMODE(share_secret.stat().st_mode) == 0o600
        assert share_secret.read_text() != token_secret.read_text()

        # rotate the token secret (gateway stopped, a fresh random secret, gateway started)
        s.kill("gateway", signal.SIGTERM)
        s.wait_exit("gateway")
        old = token_secret.read_text()
        token_secret.unlink()
        s.start_service("gateway")
        s.wait_healthy("gateway")
        assert token_secret.read_text() != old      # the gateway made a new one at start

        st, b = request(s, "GET", "/v1/share-codes", token=wtok)
        assert st == 401 and err_code(b) == "INVALID_TOKEN", b   # every old token is void
        st, b = request(s, "POST", "/v1/check", {"share_code": code, "date_of_birth": DOB})
        assert st == 200, b                                      # the live code is not
        assert [r["index"] for r in json.loads(b)["records"]] == [index]
        new_tok, _ = make_token(s, ["worker-token", NI, "--hours", "4"])
        st, b = request(s, "GET", "/v1/share-codes", token=new_tok)
        assert st == 200 and len(json.loads(b)["share_codes"]) == 1, b
