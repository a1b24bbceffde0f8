"""test_gateway_rotation.py -- a running gateway follows the register across `carepass rotate-key`
without a restart: its read-only register view (reg_refresh) verifies new checkpoints with any key
in <register>/vkeys, so after the signer is stopped, the key rotated, the signer restarted with the
new key and more events committed, GET /log/checkpoint and the employer check (POST /v1/check, which
proves each record against the gateway's own view of the register) both show the new size."""

import datetime
import http.client
import json
import signal

from harness import CarepassSystem, event
from register_check import Register

SERVICES = ("bus", "intake", "verify", "signer", "notify", "gateway")
NI, DOB = "CE654321A", "1990-11-02"   # test data, never logged


def day(offset):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)).isoformat()


def request(s, method, path, body=None, token=None):
    c = http.client.HTTPConnection("127.0.0.1", s.gateway_port, timeout=30)
    try:
        h = {"User-Agent": "test-rotation/1"}
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


def commit(s, ids):
    rep = s.submit([event(i, ni_number=NI, qualification_code="RF-FIRE", completion_date=day(-10))
                    for i in ids])
    out = {}
    for r in rep.replies:
        assert r.outcome == s.pb.OUTCOME_COMMITTED, (r.provider_event_id, r.reason_code, r.message)
        out[r.provider_event_id] = r.entry_index
    return out


def checkpoint_size(s):
    st, note = request(s, "GET", "/log/checkpoint")
    assert st == 200, note
    return int(note.decode().split("\n")[1])


def employer_check(s, code):
    st, b = request(s, "POST", "/v1/check", {"share_code": code, "date_of_birth": DOB})
    assert st == 200, b
    return json.loads(b)


def test_gateway_follows_key_rotation(tmp_path):
    with CarepassSystem(tmp_path, services=SERVICES,
                        extra_env={"CAREPASS_ACK_TIMEOUT_MS": 15000}) as s:
        before = commit(s, ["gr-1", "gr-2"])
        tok = s.run_cli(["worker-token", NI, "--days", "2"], check=True).stdout.strip()
        st, b = request(s, "POST", "/v1/share-codes", {"date_of_birth": DOB}, token=tok)
        assert st == 201, b
        code = json.loads(b)["code"]
        p = employer_check(s, code)
        assert {r["index"] for r in p["records"]} == set(before.values())
        size0 = p["checkpoint"]["size"]
        assert size0 == checkpoint_size(s) == Register(s.register_dir).size

        # rotate the key while the signer is stopped; the gateway keeps running throughout
        gw_pid = s.pid("gateway")
        s.kill("signer", signal.SIGTERM)
        s.wait_exit("signer")
        rot = s.run_cli(["rotate-key"])
        assert rot.returncode == 0, rot.stdout + rot.stderr
        s.start_service("signer")
        s.wait_healthy("signer")
        after = commit(s, ["gr-3", "gr-4", "gr-5"])
        assert min(after.values()) > size0          # after the handover entry at size0

        reg = Register(s.register_dir)
        spans = reg.key_history(s.register_pb)
        assert len(spans) == 2 and reg.checkpoint_signers() == {spans[1].key_id}   # new key only
        assert s.running("gateway") and s.pid("gateway") == gw_pid

        # the published checkpoint and the gateway's own verified view both move on
        assert checkpoint_size(s) == reg.size
        p = employer_check(s, code)
        assert p["checkpoint"]["size"] == reg.size, p["checkpoint"]
        recs = {r["index"]: r for r in p["records"]}
        assert set(recs) == set(before.values()) | set(after.values())
        for idx, r in recs.items():
            assert r["checks"]["signature"] == "passed", (idx, r)
            assert r["checks"]["inclusion"] == "passed", (idx, r)
        assert p["verification"]["authentic"] is True, p["verification"]
        assert "register refresh failed" not in s.log_text("gateway")

        # and again, a second batch under the new key
        more = commit(s, ["gr-6"])
        p = employer_check(s, code)
        assert p["checkpoint"]["size"] == Register(s.register_dir).size > more["gr-6"]
        assert {r["checks"]["inclusion"] for r in p["records"]} == {"passed"}
