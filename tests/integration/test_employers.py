"""test_employers.py -- registered employers against a running system (real Redis, every service):
`carepass employer-token` (refuses an employer not in the registry), the employer credential on
the gateway (401 for every kind of bad token, 403 EMPLOYER_UNKNOWN for a genuine token of an
employer not in the registry, and a bad credential on a check is refused, never taken as
anonymous), subscriptions that belong to the employer that made them (listed only to it, deleted
and re-keyed only by it; another employer gets the 404 of an unknown id), the per-employer
failed-check ceiling (more than the per-address one from the same address, with the per-code lock
unchanged), and no token, secret, share code or date of birth in any log."""

import datetime
import http.client
import json

import pytest

from harness import CarepassSystem, event

SERVICES = ("bus", "intake", "verify", "signer", "notify", "gateway")
NI_A, DOB_A = "HJ246810B", "1988-08-08"
PER_ADDRESS, PER_EMPLOYER, PER_CODE = 10, 25, 5
SEEN = []   # tokens, secrets and codes that must not appear in a log


def day(offset):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)).isoformat()


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    d = tmp_path_factory.mktemp("employers")
    s = CarepassSystem(d / "sys", services=SERVICES,
                       extra_env={"CAREPASS_GATEWAY_CHECK_FAILS_PER_ADDRESS": PER_ADDRESS,
                                  "CAREPASS_GATEWAY_CHECK_FAILS_PER_EMPLOYER": PER_EMPLOYER,
                                  "CAREPASS_GATEWAY_CHECK_FAILS_PER_CODE": PER_CODE})
    s.tmp = d
    try:
        rep = s.submit([event("emp-1", ni_number=NI_A, completion_date=day(-30))])
        assert all(r.outcome == s.pb.OUTCOME_COMMITTED for r in rep.replies)
        yield s
    finally:
        s.stop(show_logs=True)


def request(s, method, path, body=None, token=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", s.gateway_port, timeout=30)
    try:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def err_code(b):
    return json.loads(b)["error"]["code"]


def employer_token(s, emp, env=None):
    t = s.run_cli(["employer-token", emp, "--days", "30"], check=True, env=env).stdout.strip()
    SEEN.append(t)
    return t


def worker_token(s):
    t = s.run_cli(["worker-token", NI_A, "--days", "2"], check=True).stdout.strip()
    SEEN.append(t)
    return t


def make_code(s, **kw):
    body = {"date_of_birth": DOB_A}
    body.update(kw)
    st, _, b = request(s, "POST", "/v1/share-codes", body, token=worker_token(s))
    assert st == 201, b
    j = json.loads(b)
    SEEN.extend([j["code"], j["code"].replace("-", "")])
    return j


def reset_limits(s):
    r = s.redis()
    for k in r.keys("cp:rl:*"):
        r.cmd("DEL", k)


def test_employer_token_cli(gw):
    cp = gw.run_cli(["employer-token", "EMP-0001"])
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip().startswith("cpe_") and "token id: " in cp.stderr
    SEEN.append(cp.stdout.strip())
    cp = gw.run_cli(["employer-token", "EMP-9999"])
    assert cp.returncode == 1 and "EMP-9999 is not in the employer registry" in cp.stderr, cp.stderr
    assert cp.stdout == ""
    cp = gw.run_cli(["employer-token", "EMP-0001", "--days", "400"])
    assert cp.returncode == 2 and "--days" in cp.stderr
    # `carepass token id` reads the kind of an employer token
    tok = employer_token(gw, "EMP-0002")
    cp = gw.run_cli(["token", "id", tok])
    assert cp.returncode == 0 and " employer " in cp.stdout, cp.stdout


def test_credential_refusals(gw, tmp_path):
    code = make_code(gw)
    check = {"share_code": code["code"], "date_of_birth": DOB_A}
    st, _, b = request(gw, "GET", "/v1/subscriptions")
    assert st == 401 and err_code(b) == "UNAUTHENTICATED", b
    for tok in (gw.provider_token(), worker_token(gw), "cpe_AAAA", "not-a-token"):
        st, _, b = request(gw, "GET", "/v1/subscriptions", token=tok)
        assert st == 401 and err_code(b) == "INVALID_TOKEN", (tok[:4], b)
        # on a check the credential is optional, but one that is sent must be good
        st, _, b = request(gw, "POST", "/v1/check", check, token=tok)
        assert st == 401 and err_code(b) == "INVALID_TOKEN", (tok[:4], b)
    st, _, b = request(gw, "POST", "/v1/check", check, headers={"Authorization": "Basic eDp5"})
    assert st == 401 and err_code(b) == "UNAUTHENTICATED", b
    # a genuine token of an employer the gateway's registry does not list
    reg = tmp_path / "employers.json"
    reg.write_text(json.dumps({"version": 1, "employers": [{"id": "EMP-9999", "name": "Gone Ltd (SAMPLE)"}]}))
    ghost = employer_token(gw, "EMP-9999", env={"CAREPASS_EMPLOYERS": str(reg)})
    for method, path, body in (("GET", "/v1/subscriptions", None), ("POST", "/v1/check", check),
                               ("POST", "/v1/check/bundle", check)):
        st, _, b = request(gw, method, path, body, token=ghost)
        assert st == 403 and err_code(b) == "EMPLOYER_UNKNOWN", (path, b)
    # revoked: refused from the next request on, by id or by the whole token
    tok = employer_token(gw, "EMP-0003")
    st, _, b = request(gw, "GET", "/v1/subscriptions", token=tok)
    assert st == 200, b
    assert gw.run_cli(["token", "revoke", tok]).returncode == 0
    st, _, b = request(gw, "GET", "/v1/subscriptions", token=tok)
    assert st == 401 and err_code(b) == "TOKEN_REVOKED", b
    st, _, b = request(gw, "POST", "/v1/check", check, token=tok)
    assert st == 401 and err_code(b) == "TOKEN_REVOKED", b
    # and without any credential the check is answered as it always was
    st, _, b = request(gw, "POST", "/v1/check", check)
    assert st == 200, b


def test_subscriptions_belong_to_their_employer(gw):
    reset_limits(gw)
    a, b_tok = employer_token(gw, "EMP-0001"), employer_token(gw, "EMP-0002")
    code = make_code(gw, allow_subscriptions=True, valid_days=10)
    sub = {"share_code": code["code"], "date_of_birth": DOB_A, "url": "http://127.0.0.1:9/a"}
    # a self-declared label may not stand in for the registered name
    st, _, b = request(gw, "POST", "/v1/subscriptions", dict(sub, employer="Somebody Else"), token=a)
    assert st == 400 and err_code(b) == "INVALID_FIELD", b
    st, _, b = request(gw, "POST", "/v1/subscriptions", sub, token=a)
    assert st == 201, b
    mine = json.loads(b)
    SEEN.append(mine["secret"])
    r = gw.redis()
    h = r.hgetall(f"cp:sub:{{{mine['id']}}}")
    assert h["employer_id"] == b"EMP-0001"
    assert h["employer"] == b"Willowbrook Care Home (SAMPLE - fictional)"
    # the same URL under the same code by another employer: refused, without A's id
    st, _, body = request(gw, "POST", "/v1/subscriptions", sub, token=b_tok)
    assert st == 409 and err_code(body) == "SUBSCRIPTION_URL_TAKEN" and mine["id"].encode() not in body, body
    # ... and A asking again gets its own one back
    st, _, body = request(gw, "POST", "/v1/subscriptions", sub, token=a)
    assert st == 200 and json.loads(body)["id"] == mine["id"], body
    # an anonymous subscription still works as before
    st, _, body = request(gw, "POST", "/v1/subscriptions", dict(sub, url="http://127.0.0.1:9/anon"))
    assert st == 201, body
    anon = json.loads(body)
    SEEN.append(anon["secret"])
    assert r.hget(f"cp:sub:{{{anon['id']}}}", "employer_id") == b""

    # listing: A sees exactly its own, with no share code, date of birth, worker or secret
    st, hdr, body = request(gw, "GET", "/v1/subscriptions", token=a)
    assert st == 200 and hdr.get("cache-control") == "no-store", body
    listed = json.loads(body)["subscriptions"]
    assert [x["id"] for x in listed] == [mine["id"]]
    assert set(listed[0]) == {"id", "events", "expires_at", "expires", "url", "share_code_id"}
    assert listed[0]["share_code_id"] == code["id"] and listed[0]["url"] == sub["url"]
    assert listed[0]["expires"] == code["expires"]
    for secret in (code["code"], code["code"].replace("-", ""), DOB_A, mine["secret"], h["worker"].decode()):
        assert secret.encode() not in body
    st, _, body = request(gw, "GET", "/v1/subscriptions", token=b_tok)
    assert st == 200 and json.loads(body)["subscriptions"] == [], body

    # another employer, or no credential, cannot reach A's subscription: the 404 of an unknown id
    unknown = "sub_" + "0" * 32
    st, _, ref = request(gw, "DELETE", f"/v1/subscriptions/{unknown}", token=b_tok)
    assert st == 404 and err_code(ref) == "NOT_FOUND"
    for tok in (b_tok, None):
        st, _, body = request(gw, "DELETE", f"/v1/subscriptions/{mine['id']}", token=tok)
        assert st == 404 and err_code(body) == "NOT_FOUND" and json.loads(body) == json.loads(ref), body
        st, _, body = request(gw, "POST", f"/v1/subscriptions/{mine['id']}/secret", token=tok)
        assert st == 404 and err_code(body) == "NOT_FOUND", body
    assert r.cmd("EXISTS", f"cp:sub:{{{mine['id']}}}") == 1
    assert r.hget(f"cp:sub:{{{mine['id']}}}", "secret").decode() == mine["secret"]   # not re-keyed
    # nor can an employer reach an anonymous one (its id is the capability of whoever has no account)
    st, _, body = request(gw, "DELETE", f"/v1/subscriptions/{anon['id']}", token=a)
    assert st == 404, body
    st, _, body = request(gw, "DELETE", f"/v1/subscriptions/{anon['id']}")
    assert st == 200, body

    # the owner re-keys and deletes its own
    st, _, body = request(gw, "POST", f"/v1/subscriptions/{mine['id']}/secret", token=a)
    assert st == 200, body
    SEEN.append(json.loads(body)["secret"])
    st, _, body = request(gw, "DELETE", f"/v1/subscriptions/{mine['id']}", token=a)
    assert st == 200 and json.loads(body) == {"deleted": mine["id"]}, body
    assert r.cmd("EXISTS", f"cp:sub:{{{mine['id']}}}") == 0
    assert mine["id"].encode() not in (r.cmd("SMEMBERS", "cp:emp:{EMP-0001}:subs") or [])
    st, _, body = request(gw, "GET", "/v1/subscriptions", token=a)
    assert st == 200 and json.loads(body)["subscriptions"] == [], body

    # a subscription whose share code is withdrawn leaves the employer's list too
    st, _, body = request(gw, "POST", "/v1/subscriptions", dict(sub, url="http://127.0.0.1:9/a2"), token=a)
    assert st == 201, body
    SEEN.append(json.loads(body)["secret"])
    st, _, _ = request(gw, "DELETE", f"/v1/share-codes/{code['id']}", token=worker_token(gw))
    assert st == 200
    st, _, body = request(gw, "GET", "/v1/subscriptions", token=a)
    assert st == 200 and json.loads(body)["subscriptions"] == [], body


def nonexistent_code(i):
    alphabet = "ABCDEFGHJKLMNPQRTUVWXY346789"
    return "YYY-" + alphabet[i // 28 % 28] + alphabet[i % 28] + "A-BCD"


def test_employer_ceiling_is_per_employer_and_the_code_lock_holds(gw):
    reset_limits(gw)
    a, b_tok = employer_token(gw, "EMP-0001"), employer_token(gw, "EMP-0002")
    real = make_code(gw)
    # an authenticated employer fails more than the per-address ceiling from this one address ...
    for i in range(PER_ADDRESS + 5):
        st, _, body = request(gw, "POST", "/v1/check", {"share_code": nonexistent_code(i), "date_of_birth": DOB_A},
                              token=a)
        assert st == 404 and err_code(body) == "SHARE_CODE_NOT_FOUND", (i, body)
    # ... which is charged to it, not to the address: anonymous checks from here still work
    r = gw.redis()
    assert int(r.get("cp:rl:emp:{EMP-0001}")) == PER_ADDRESS + 5
    assert r.get("cp:rl:ip:{127.0.0.1}") is None
    st, _, body = request(gw, "POST", "/v1/check", {"share_code": real["code"], "date_of_birth": DOB_A})
    assert st == 200, body
    # the per-code lock is the same for an employer: 5 wrong dates of birth and the right one is refused
    for i in range(PER_CODE):
        st, _, body = request(gw, "POST", "/v1/check", {"share_code": real["code"], "date_of_birth": f"1970-01-{i + 1:02d}"},
                              token=b_tok)
        assert st == 404, body
    for tok in (b_tok, a, None):
        st, h, body = request(gw, "POST", "/v1/check", {"share_code": real["code"], "date_of_birth": DOB_A}, token=tok)
        assert st == 429 and err_code(body) == "RATE_LIMITED" and "for this share code" in json.loads(body)["error"]["message"], body
    st, _, body = request(gw, "POST", "/v1/check/bundle", {"share_code": real["code"], "date_of_birth": DOB_A}, token=a)
    assert st == 429, body
    # the employer's own ceiling: the tries before it warn, then it is refused
    msgs = []
    for i in range(PER_ADDRESS + 5, PER_EMPLOYER):
        st, _, body = request(gw, "POST", "/v1/check", {"share_code": nonexistent_code(i), "date_of_birth": DOB_A},
                              token=a)
        assert st == 404, body
        msgs.append(json.loads(body)["error"]["message"])
    assert "checking with your employer account is now locked" in msgs[-1], msgs[-1]
    st, h, body = request(gw, "POST", "/v1/check", {"share_code": nonexistent_code(99), "date_of_birth": DOB_A},
                          token=a)
    assert st == 429 and "with your employer account" in json.loads(body)["error"]["message"], body
    assert 0 < int(h["retry-after"]) <= 900
    # another employer and anonymous checks from the same address are not affected by A's ceiling
    st, _, body = request(gw, "POST", "/v1/check", {"share_code": nonexistent_code(100), "date_of_birth": DOB_A},
                          token=b_tok)
    assert st == 404, body
    st, _, body = request(gw, "POST", "/v1/check", {"share_code": nonexistent_code(101), "date_of_birth": DOB_A})
    assert st == 404, body
    reset_limits(gw)


def test_worker_sees_the_registered_employer(gw):
    reset_limits(gw)
    a = employer_token(gw, "EMP-0001")
    wtok = worker_token(gw)
    st, _, b = request(gw, "POST", "/v1/share-codes", {"date_of_birth": DOB_A}, token=wtok)
    assert st == 201, b
    code = json.loads(b)
    SEEN.extend([code["code"], code["code"].replace("-", "")])
    check = {"share_code": code["code"], "date_of_birth": DOB_A}
    # a self-declared label may not stand in for the registered name on a check either
    st, _, b = request(gw, "POST", "/v1/check", dict(check, employer="Somebody Else"), token=a)
    assert st == 400 and err_code(b) == "INVALID_FIELD", b
    st, _, b = request(gw, "POST", "/v1/check", check, token=a)
    assert st == 200, b
    st, _, b = request(gw, "POST", "/v1/check", dict(check, date_of_birth="1970-01-01"), token=a)
    assert st == 404, b
    st, _, b = request(gw, "POST", "/v1/check", dict(check, employer="Corner Shop Care"))
    assert st == 200, b

    def views():
        st, _, b = request(gw, "GET", "/v1/views", token=wtok)
        assert st == 200, b
        return [v for v in json.loads(b)["views"] if v["code_id"] == code["id"]]
    got = gw.wait_for(lambda: (lambda v: v if len(v) == 3 else None)(views()), what="three views")
    anon, failed, seen = got   # newest first
    assert anon["employer"] == "Corner Shop Care" and "employer_id" not in anon
    assert anon["self_declared"] == ["employer", "client.user_agent"]
    for v in (failed, seen):
        assert v["employer"] == "Willowbrook Care Home (SAMPLE - fictional)" and v["employer_id"] == "EMP-0001", v
        assert v["self_declared"] == ["client.user_agent"], v
    assert failed["kind"] == "failed" and failed["records"] == 0
    assert seen["kind"] == "check" and seen["records"] >= 1


def test_no_token_secret_or_code_in_logs(gw):
    # runs last in this module: everything above has been logged by now
    text = "".join(gw.log_text(s) for s in SERVICES)
    assert text, "no logs"
    for secret in [NI_A, DOB_A] + SEEN + [t[4:] for t in SEEN if t.startswith(("cpe_", "cpw_", "cpp_"))]:
        assert secret not in text, f"{secret[:6]}... found in a service log"
