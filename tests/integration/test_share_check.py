"""test_share_check.py -- workers' share codes and employers' checks through the gateway, against a
running system (real Redis, every service): worker tokens, create / list / withdraw codes, the
employer check and its statuses (valid, revoked with reason, expired by the test clock), the
indistinguishable wrong-code / wrong-date-of-birth answer, the failed-check limits (429), the
passport bundle verified offline by `carepass verify`, employer subscriptions in notify's format,
and no date of birth, share code or NI number in any service log.

The failed-check counters are shared by every request from 127.0.0.1, so each test that makes
failed checks starts by deleting them (reset_limits)."""

import datetime
import http.client
import json
import re
import time

import pytest

from harness import CarepassSystem, event

SERVICES = ("bus", "intake", "verify", "signer", "notify", "gateway")
CODE_RE = re.compile(r"^[A-HJ-NP-RT-Y346789]{3}-[A-HJ-NP-RT-Y346789]{3}-[A-HJ-NP-RT-Y346789]{3}$")

# personal data used in this module: none of it may appear in a log
NI_A, DOB_A = "AB123456C", "1985-03-27"
NI_B, DOB_B = "CE654321A", "1990-11-02"
NI_C, DOB_C = "JG103759A", "1979-06-15"
SEEN_CODES = []


def day(offset):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)).isoformat()


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    d = tmp_path_factory.mktemp("share")
    today_file = d / "today"
    s = CarepassSystem(d / "sys", services=SERVICES,
                       extra_env={"CAREPASS_TODAY_FILE": str(today_file), "CAREPASS_ACK_TIMEOUT_MS": 15000,
                                  # a small per-address ceiling, so that the tests reach it quickly
                                  "CAREPASS_GATEWAY_CHECK_FAILS_PER_ADDRESS": 10})
    s.today_file = today_file
    try:
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


def jbody(b):
    return json.loads(b)


def err_code(b):
    return jbody(b)["error"]["code"]


def worker_token(s, ni):
    return s.run_cli(["worker-token", ni, "--days", "2"], check=True).stdout.strip()


def commit(s, evs, provider="PRV-0001"):
    rep = s.submit(evs, provider=provider)
    out = {}
    for r in rep.replies:
        assert r.outcome == s.pb.OUTCOME_COMMITTED, (r.provider_event_id, r.reason_code, r.message)
        out[r.provider_event_id] = r.entry_index
    return out


def make_code(s, token, dob, **kw):
    body = {"date_of_birth": dob}
    body.update(kw)
    st, _, b = request(s, "POST", "/v1/share-codes", body, token=token)
    assert st == 201, b
    j = jbody(b)
    SEEN_CODES.append(j["code"])
    return j


def check(s, code, dob, employer=None, path="/v1/check", **kw):
    body = {"share_code": code, "date_of_birth": dob}
    if employer:
        body["employer"] = employer
    body.update(kw)
    return request(s, "POST", path, body, headers={"User-Agent": "test-agent/1"})


def reset_limits(s):
    r = s.redis()
    for k in r.keys("cp:rl:*"):
        r.cmd("DEL", k)


# ---- worker: tokens and share codes ---------------------------------------------------------

def test_worker_codes_create_list_withdraw(gw):
    tok = worker_token(gw, NI_A)
    assert tok.startswith("cpw_")
    commit(gw, [event("w-1", ni_number=NI_A, completion_date=day(-40))])

    st, _, b = request(gw, "GET", "/v1/share-codes")
    assert st == 401 and err_code(b) == "UNAUTHENTICATED"
    st, _, b = request(gw, "GET", "/v1/share-codes", token=gw.provider_token())
    assert st == 401 and err_code(b) == "INVALID_TOKEN"

    c = make_code(gw, tok, DOB_A, valid_days=7)
    assert CODE_RE.match(c["code"]), c
    assert c["id"].startswith("sc_") and c["scope"] == "all" and c["allow_subscriptions"] is False
    assert 6.9 * 86400 < c["expires"] - time.time() <= 7 * 86400 + 5
    # stored hashed, with a TTL = validity; neither the code nor the date of birth in Redis
    r = gw.redis()
    ttl = r.cmd("TTL", f"cp:scid:{{{c['id']}}}")
    assert 6.9 * 86400 < ttl <= 7 * 86400
    for k in r.keys("cp:s*"):
        if r.cmd("TYPE", k) == b"hash":
            vals = b" ".join(r.hgetall(k).values())
            assert c["code"].replace("-", "").encode() not in vals and DOB_A.encode() not in vals

    st, _, b = request(gw, "GET", "/v1/share-codes", token=tok)
    assert st == 200, b
    listed = jbody(b)["share_codes"]
    mine = [x for x in listed if x["id"] == c["id"]]
    assert len(mine) == 1 and mine[0]["views"] == 0 and "code" not in mine[0]
    assert set(mine[0]) == {"id", "label", "created_at", "expires_at", "expires", "scope", "allow_subscriptions",
                            "views"}
    assert mine[0]["label"] == ""
    # the worker's own label for a code, shown back in the list only to them
    lab = make_code(gw, tok, DOB_A, label="Sunrise Care interview \u2013 Tuesday")
    assert lab["label"] == "Sunrise Care interview \u2013 Tuesday"
    st, _, b = request(gw, "GET", "/v1/share-codes", token=tok)
    assert [x["label"] for x in jbody(b)["share_codes"] if x["id"] == lab["id"]] == [lab["label"]]
    assert request(gw, "DELETE", f"/v1/share-codes/{lab['id']}", token=tok)[0] == 200

    # bad input
    for body, code in (({"date_of_birth": DOB_A, "valid_days": 91}, "INVALID_FIELD"),
                       ({"date_of_birth": DOB_A, "valid_days": 0}, "INVALID_FIELD"),
                       ({"date_of_birth": "1985-02-30"}, "INVALID_FIELD"),
                       ({"valid_days": 5}, "MISSING_FIELD"),
                       ({"date_of_birth": DOB_A, "entries": [999999]}, "NOT_YOUR_RECORD"),
                       ({"date_of_birth": DOB_A, "entries": "all"}, "INVALID_FIELD"),
                       ({"date_of_birth": DOB_A, "label": "x" * 101}, "LABEL_TOO_LONG"),
                       ({"date_of_birth": DOB_A, "label": "a\u202eb"}, "LABEL_BIDI_CONTROL"),
                       ({"date_of_birth": DOB_A, "label": 7}, "INVALID_FIELD")):
        st, _, b = request(gw, "POST", "/v1/share-codes", body, token=tok)
        assert st == 400 and err_code(b) == code, (body, b)
    st, _, b = request(gw, "POST", "/v1/share-codes", b"{nope", token=tok)
    assert st == 400 and err_code(b) == "MALFORMED_JSON"

    # another worker cannot withdraw it
    st, _, b = request(gw, "DELETE", f"/v1/share-codes/{c['id']}", token=worker_token(gw, NI_B))
    assert st == 404 and err_code(b) == "NOT_FOUND"
    st, _, b = request(gw, "DELETE", f"/v1/share-codes/{c['id']}", token=tok)
    assert st == 200 and jbody(b)["withdrawn"] == c["id"], b
    st, _, b = request(gw, "GET", "/v1/share-codes", token=tok)
    assert c["id"] not in [x["id"] for x in jbody(b)["share_codes"]]
    st, _, b = request(gw, "DELETE", f"/v1/share-codes/{c['id']}", token=tok)
    assert st == 404
    st, _, b = request(gw, "DELETE", "/v1/share-codes/../../etc", token=tok)
    assert st == 404


# ---- employer: the check ---------------------------------------------------------------------

def test_check_happy_path_and_views(gw):
    reset_limits(gw)
    tok = worker_token(gw, NI_B)
    idx = commit(gw, [event("b-1", ni_number=NI_B, qualification_code="RF-FIRE", completion_date=day(-30)),
                      event("b-2", ni_number=NI_B, qualification_code="RF-SAFEG", completion_date=day(-20))],
                 provider="PRV-0002")
    c = make_code(gw, tok, DOB_B)
    # typed in lower case with spaces: still the same code
    st, h, b = check(gw, c["code"].lower().replace("-", " "), DOB_B, employer="Sunny Days Care Home")
    assert st == 200, b
    assert h["cache-control"] == "no-store"
    p = jbody(b)
    assert p["checked_on"] == day(0)
    recs = {r["index"]: r for r in p["records"]}
    assert set(recs) == set(idx.values())
    r1 = recs[idx["b-1"]]
    assert r1["title"] == "Fire safety (annual refresher)"
    assert r1["provider"] == {"id": "PRV-0002", "name": "Brightwater Refresher Academy (SAMPLE - fictional)"}
    assert r1["completion_date"] == day(-30) and r1["valid_until"] > day(300)
    assert r1["status"] == "valid" and r1["type"] == "record"
    assert r1["checks"] == {"signature": "passed", "inclusion": "passed", "revocation": "passed", "expiry": "passed"}
    assert "valid today" in r1["statement"]
    v = p["verification"]
    assert v["authentic"] is True and v["signature"] == v["inclusion"] == "passed"
    assert "2 are valid" in v["statement"], v
    assert p["checkpoint"]["size"] > max(idx.values())
    # the worker sees the view
    st, _, b = request(gw, "GET", "/v1/views", token=tok)
    views = jbody(b)["views"]
    assert views[0]["employer"] == "Sunny Days Care Home" and views[0]["code_id"] == c["id"]
    assert views[0]["client"]["ip"] == "127.0.0.1" and views[0]["client"]["user_agent"] == "test-agent/1"
    assert views[0]["records"] == 2 and views[0]["at"].endswith("Z")
    st, _, b = request(gw, "GET", "/v1/share-codes", token=tok)
    assert [x["views"] for x in jbody(b)["share_codes"] if x["id"] == c["id"]] == [1]
    st, _, b = request(gw, "GET", "/v1/views?limit=0", token=tok)
    assert st == 400 and err_code(b) == "INVALID_QUERY"

    # a code scoped to one record shows only that one
    c2 = make_code(gw, tok, DOB_B, entries=[idx["b-2"]], valid_days=3)
    assert c2["scope"] == [idx["b-2"]]
    st, _, b = check(gw, c2["code"], DOB_B)
    assert st == 200 and [r["index"] for r in jbody(b)["records"]] == [idx["b-2"]]


def test_wrong_code_and_wrong_dob_look_the_same(gw):
    reset_limits(gw)
    tok = worker_token(gw, NI_B)
    c = make_code(gw, tok, DOB_B)
    st1, h1, b1 = check(gw, c["code"], "1990-11-03")           # wrong date of birth
    st2, h2, b2 = check(gw, "ABC-DEF-GHJ", DOB_B)              # (almost surely) no such code
    assert st1 == st2 == 404
    assert b1 == b2 and err_code(b1) == "SHARE_CODE_NOT_FOUND"
    assert h1.get("content-type") == h2.get("content-type")
    # malformed input is a 400 that names the field, never the value
    st, _, b = check(gw, "ABC-DEF-GH0", DOB_B)
    assert st == 400 and err_code(b) == "INVALID_FIELD" and "GH0" not in b.decode()
    st, _, b = check(gw, c["code"], "27/03/1985")
    assert st == 400 and "27/03" not in b.decode()
    st, _, b = request(gw, "POST", "/v1/check", {"share_code": c["code"]})
    assert st == 400 and err_code(b) == "MISSING_FIELD"
    st, _, b = request(gw, "GET", "/v1/check")
    assert st == 405


def test_brute_force_hits_the_limits(gw):
    reset_limits(gw)
    tok = worker_token(gw, NI_B)
    c = make_code(gw, tok, DOB_B)
    # per code: 5 failures, then even the right date of birth is refused for a while; the last
    # tries before the lock say so
    warnings = []
    for i in range(5):
        st, _, b = check(gw, c["code"], f"1970-01-{i + 1:02d}")
        assert st == 404
        warnings.append(jbody(b)["error"]["message"])
    assert "more failed" not in warnings[0] + warnings[1]
    assert "2 more failed tries before this share code is locked for 15 minutes" in warnings[2]
    assert "1 more failed try before this share code is locked" in warnings[3]
    assert "That was the last try: this share code is now locked for 15 minutes" in warnings[4]
    st, h, b = check(gw, c["code"], DOB_B)
    assert st == 429 and err_code(b) == "RATE_LIMITED", b
    assert 0 < int(h["retry-after"]) <= 900
    # the worker sees every try on their code: five failed, then one refused while locked (no
    # records shown, the address it came from); the codes that do not exist are nobody's to see
    st, _, b = request(gw, "GET", "/v1/views", token=tok)
    tries = [v for v in jbody(b)["views"] if v["code_id"] == c["id"]]
    assert [v["kind"] for v in tries] == ["locked"] + ["failed"] * 5, tries
    assert all(v["records"] == 0 and v["client"]["ip"] == "127.0.0.1" for v in tries)
    st, _, b = request(gw, "GET", "/v1/share-codes", token=tok)
    assert [x["views"] for x in jbody(b)["share_codes"] if x["id"] == c["id"]] == [0]   # not views of it
    # per address: 10 failures in all (5 above + 5 more codes), then everything from it is refused
    other = make_code(gw, tok, DOB_B)
    for i in range(5):
        st, _, _ = check(gw, f"ABC-DEF-{'GHJKL'[i]}{'GHJKL'[i]}{'GHJKL'[i]}", DOB_B)
        assert st == 404
    st, h, b = check(gw, other["code"], DOB_B)
    assert st == 429 and err_code(b) == "RATE_LIMITED" and int(h["retry-after"]) > 0
    reset_limits(gw)
    st, _, b = check(gw, other["code"], DOB_B)
    assert st == 200, b


def test_withdrawn_code_stops_at_once(gw):
    reset_limits(gw)
    tok = worker_token(gw, NI_B)
    c = make_code(gw, tok, DOB_B)
    assert check(gw, c["code"], DOB_B)[0] == 200
    st, _, b = request(gw, "DELETE", f"/v1/share-codes/{c['id']}", token=tok)
    assert st == 200, b
    st, _, b = check(gw, c["code"], DOB_B)
    assert st == 404 and err_code(b) == "SHARE_CODE_NOT_FOUND"


def test_revoked_record_shows_revoked_with_reason(gw):
    reset_limits(gw)
    tok = worker_token(gw, NI_C)
    idx = commit(gw, [event("c-1", ni_number=NI_C, completion_date=day(-15)),
                      event("c-2", ni_number=NI_C, qualification_code="RF-SAFEG", completion_date=day(-15))])
    rev = gw.submit([event("c-1-rev", ni_number=NI_C, completion_date=day(-15), kind="revocation",
                           revokes_event_id="c-1", revocation_reason="ASSESSMENT_INVALID")]).replies[0]
    assert rev.outcome == gw.pb.OUTCOME_COMMITTED, (rev.reason_code, rev.message)
    c = make_code(gw, tok, DOB_C)
    st, _, b = check(gw, c["code"], DOB_C)
    assert st == 200, b
    p = jbody(b)
    recs = {r["index"]: r for r in p["records"]}
    assert set(recs) == {idx["c-1"], idx["c-2"]}      # the revocation entry is not a record
    r = recs[idx["c-1"]]
    assert r["status"] == "revoked" and r["checks"]["revocation"] == "failed"
    assert r["revocation"]["reason_code"] == "ASSESSMENT_INVALID" and r["revocation"]["index"] == rev.entry_index
    assert r["revocation"]["date"] == day(0) and "revoked on" in r["statement"]
    assert recs[idx["c-2"]]["status"] == "valid"
    assert p["verification"]["revocation"] == "failed" and p["verification"]["authentic"] is True


def test_expired_record_shows_expired(gw):
    reset_limits(gw)
    tok = worker_token(gw, NI_C)
    c = make_code(gw, tok, DOB_C, valid_days=90)
    st, _, b = check(gw, c["code"], DOB_C)
    live = [r for r in jbody(b)["records"] if r["status"] == "valid"]
    assert live
    until = max(r["valid_until"] for r in live)
    later = (datetime.date.fromisoformat(until) + datetime.timedelta(days=1)).isoformat()
    gw.today_file.write_text(later + "\n")
    try:
        def expired():
            st, _, b = check(gw, c["code"], DOB_C)
            p = jbody(b)
            return p if st == 200 and p["checked_on"] == later else None
        p = gw.wait_for(expired, timeout=5, interval=0.3, what="the gateway clock moved")
        for r in p["records"]:
            assert r["status"] in ("expired", "revoked"), r
            if r["status"] == "expired":
                assert r["checks"]["expiry"] == "failed" and "expired" in r["statement"]
        assert p["verification"]["expiry"] == "failed"
    finally:
        gw.today_file.unlink()


def verify_bundle(gw, path):
    return gw.run_cli(["verify", str(path), "--vkey", str(gw.register_dir / "vkey")])


def test_bundle_verifies_offline(gw, tmp_path):
    reset_limits(gw)
    c = make_code(gw, worker_token(gw, NI_B), DOB_B)
    st, h, b = check(gw, c["code"], DOB_B, path="/v1/check/bundle")
    # format-2 entries (the default): the bundle carries their openings
    assert st == 200 and b.startswith(b"carepass-passport/v2\n") and b"\nopening " in b, b[:200]
    assert "attachment" in h["content-disposition"] and h["cache-control"] == "no-store"
    f = tmp_path / "passport.carepass"
    f.write_bytes(b)
    r = verify_bundle(gw, f)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "VERIFIED: 0 check(s) failed" in r.stdout
    # the same through POST /v1/check format=bundle
    st, _, b2 = check(gw, c["code"], DOB_B, format="bundle")
    assert st == 200 and b2.startswith(b"carepass-passport/v2\n")
    st, _, b3 = check(gw, c["code"], DOB_B, format="pdf")
    assert st == 400 and err_code(b3) == "INVALID_FIELD"
    # a tampered bundle fails offline
    bad = bytearray(b)
    pos = bad.index(b"proof entry")
    bad[pos + 200] ^= 1
    f.write_bytes(bytes(bad))
    assert verify_bundle(gw, f).returncode != 0

    # a revoked record travels with its revocation: every proof checks, the statement says revoked
    c = make_code(gw, worker_token(gw, NI_C), DOB_C)
    st, _, b = check(gw, c["code"], DOB_C, path="/v1/check/bundle")
    f.write_bytes(b)
    r = verify_bundle(gw, f)
    assert r.returncode == 1 and "NOT VERIFIED: 1 check(s) failed" in r.stdout, r.stdout
    assert "revocation: failed (revoked by entry" in r.stdout and "signature: failed" not in r.stdout


def test_subscriptions(gw):
    reset_limits(gw)
    tok = worker_token(gw, NI_B)
    no = make_code(gw, tok, DOB_B)
    sub = {"share_code": no["code"], "date_of_birth": DOB_B, "url": "http://127.0.0.1:9/hook",
           "employer": "Sunny Days"}
    st, _, b = request(gw, "POST", "/v1/subscriptions", sub)
    assert st == 403 and err_code(b) == "SUBSCRIPTIONS_NOT_ALLOWED", b

    yes = make_code(gw, tok, DOB_B, allow_subscriptions=True, valid_days=10)
    sub["share_code"] = yes["code"]
    for bad in ({"url": "ftp://x"}, {"url": "http://a b"}):
        st, _, b = request(gw, "POST", "/v1/subscriptions", dict(sub, **bad))
        assert st == 400 and err_code(b) == "URL_REFUSED", (bad, b)
    st, _, b = request(gw, "POST", "/v1/subscriptions", dict(sub, events=["record.created"]))
    assert st == 400 and err_code(b) == "INVALID_FIELD", b
    st, _, b = request(gw, "POST", "/v1/subscriptions", dict(sub, date_of_birth="1990-11-01"))
    assert st == 404 and err_code(b) == "SHARE_CODE_NOT_FOUND"
    st, _, b = request(gw, "POST", "/v1/subscriptions", dict(sub, events=["record.revoked"]))
    assert st == 201, b
    j = jbody(b)
    assert re.match(r"^sub_[0-9a-f]{32}$", j["id"]) and j["events"] == ["record.revoked"]
    r = gw.redis()
    h = r.hgetall(f"cp:sub:{{{j['id']}}}")
    worker = h["worker"].decode()
    assert len(worker) == 64 and h["url"] == b"http://127.0.0.1:9/hook" and h["employer"] == b"Sunny Days"
    assert h["share_code"].decode() == yes["id"] and int(h["expires_at"]) == yes["expires"]
    assert h["events"] == b"record.revoked" and h["entries"] == b""
    assert j["id"].encode() in r.cmd("SMEMBERS", f"cp:w:{{{worker}}}:subs")
    assert 0 < r.cmd("TTL", f"cp:sub:{{{j['id']}}}") <= 11 * 86400

    # unsubscribe
    st, _, b = request(gw, "DELETE", f"/v1/subscriptions/{j['id']}")
    assert st == 200
    assert r.cmd("EXISTS", f"cp:sub:{{{j['id']}}}") == 0
    st, _, b = request(gw, "DELETE", f"/v1/subscriptions/{j['id']}")
    assert st == 404
    # withdrawing the code removes its subscriptions
    st, _, b = request(gw, "POST", "/v1/subscriptions", sub)
    sid = jbody(b)["id"]
    st, _, b = request(gw, "DELETE", f"/v1/share-codes/{yes['id']}", token=tok)
    assert st == 200 and jbody(b)["subscriptions_removed"] == 1
    assert r.cmd("EXISTS", f"cp:sub:{{{sid}}}") == 0
    assert sid.encode() not in (r.cmd("SMEMBERS", f"cp:w:{{{worker}}}:subs") or [])


def test_no_personal_data_in_logs(gw):
    # runs last in this module: everything above has been logged by now
    text = "".join(gw.log_text(s) for s in SERVICES)
    assert text, "no logs"
    for secret in [NI_A, NI_B, NI_C, DOB_A, DOB_B, DOB_C] + SEEN_CODES + [c.replace("-", "") for c in SEEN_CODES]:
        assert secret not in text, f"{secret!r} found in a service log"


def test_subscription_caps_and_one_per_url(tmp_path):
    """Subscriptions are bounded per share code and per worker (409 SUBSCRIPTION_LIMIT), a
    concurrent burst gets no more than the cap, the same URL under one code is one subscription,
    and expired subscriptions stop counting."""
    import concurrent.futures
    env = {"CAREPASS_GATEWAY_SUBS_PER_CODE": 3, "CAREPASS_GATEWAY_SUBS_PER_WORKER": 5}
    with CarepassSystem(tmp_path, services=("bus", "gateway"), extra_env=env) as s:
        tok = worker_token(s, NI_C)
        one = make_code(s, tok, DOB_C, allow_subscriptions=True)
        base = {"share_code": one["code"], "date_of_birth": DOB_C, "employer": "Sunrise Care"}

        def sub(code, url):
            st, _, b = request(s, "POST", "/v1/subscriptions", dict(base, share_code=code, url=url))
            return st, jbody(b)

        # the same URL twice is one subscription (200, existing, same id)
        st, first = sub(one["code"], "http://127.0.0.1:9/a")
        assert st == 201, first
        st, again = sub(one["code"], "http://127.0.0.1:9/a")
        assert st == 200 and again["id"] == first["id"] and again.get("existing") is True, again
        assert again["events"] == first["events"] and again["expires"] == first["expires"]
        # a burst of 20 different URLs on the same code: 2 more fit (3 per code), the rest 409
        with concurrent.futures.ThreadPoolExecutor(10) as ex:
            res = list(ex.map(lambda i: sub(one["code"], f"http://127.0.0.1:9/burst/{i}"), range(20)))
        made = [j for st, j in res if st == 201]
        refused = [j for st, j in res if st == 409]
        assert len(made) == 2 and len(refused) == 18, [st for st, _ in res]
        assert all(j["error"]["code"] == "SUBSCRIPTION_LIMIT" and "3" in j["error"]["message"] for j in refused)
        r = s.redis()
        assert r.cmd("SCARD", f"cp:scid:{{{one['id']}}}:subs") == 3
        worker = r.hgetall(f"cp:sub:{{{first['id']}}}")["worker"].decode()
        assert r.cmd("SCARD", f"cp:w:{{{worker}}}:subs") == 3
        # deleting one makes room under the code
        st, _, b = request(s, "DELETE", f"/v1/subscriptions/{made[0]['id']}")
        assert st == 200, b
        st, j = sub(one["code"], "http://127.0.0.1:9/after-delete")
        assert st == 201, j
        # a second code: the worker's cap (5) holds over both codes
        two = make_code(s, tok, DOB_C, allow_subscriptions=True)
        got = [sub(two["code"], f"http://127.0.0.1:9/two/{i}")[0] for i in range(3)]
        assert got == [201, 201, 409], got
        st, j = sub(two["code"], "http://127.0.0.1:9/two/x")
        assert st == 409 and "worker" in j["error"]["message"], j
        # nothing half-made by the refusals: the code's set and URL map match its subscriptions
        assert r.cmd("SCARD", f"cp:scid:{{{two['id']}}}:subs") == 2
        assert r.cmd("HLEN", f"cp:scid:{{{two['id']}}}:sub_urls") == 2
        assert r.cmd("SCARD", f"cp:w:{{{worker}}}:subs") == 5
        # an expired subscription stops counting (its hash is gone; the worker's set is pruned)
        r.cmd("DEL", f"cp:sub:{{{first['id']}}}")
        st, j = sub(two["code"], "http://127.0.0.1:9/two/after-expiry")
        assert st == 201, j
        assert first["id"].encode() not in r.cmd("SMEMBERS", f"cp:w:{{{worker}}}:subs")


def test_an_office_behind_one_address_is_not_locked_out(tmp_path):
    """With the default per-address ceiling (GATEWAY_CHECK_FAILS_PER_ADDRESS, 60 per 15 minutes),
    forty managers behind one office address who each mistype once do not lock that address out:
    the 41st check, typed right, opens. The per-code limit still locks one code after 5."""
    with CarepassSystem(tmp_path, services=("bus", "verify", "signer", "gateway")) as s:
        tok = worker_token(s, NI_C)
        good = make_code(s, tok, DOB_C)
        for i in range(40):
            st, _, _ = check(s, f"ABC-{'DEFGHJKLMN'[i // 10]}EF-GH{'ABCDEFGHJK'[i % 10]}", DOB_C)
            assert st == 404, i
        st, _, b = check(s, good["code"], DOB_C)
        assert st == 200, b
        locked = make_code(s, tok, DOB_C)
        for i in range(5):
            assert check(s, locked["code"], f"1970-02-{i + 1:02d}")[0] == 404
        assert check(s, locked["code"], DOB_C)[0] == 429


def test_the_worker_sees_their_own_passport(gw):
    """GET /v1/passport: the worker's own records with titles and indexes, as an employer would see
    them, so a code can be scoped by name; readiness for a role when asked; no view recorded."""
    NI_OWN, DOB_OWN = "HJ246802B", "1979-11-23"   # a worker no other test of the module uses
    tok = worker_token(gw, NI_OWN)
    idx = commit(gw, [event("own-1", ni_number=NI_OWN, qualification_code="RF-FIRE", completion_date=day(-20)),
                      event("own-2", ni_number=NI_OWN, qualification_code="RF-SAFEG", completion_date=day(-10))])
    st, h, b = request(gw, "GET", "/v1/passport", token=tok)
    assert st == 200, b
    p = jbody(b)
    assert "share_code" not in p and h["cache-control"] == "no-store"
    titles = {r["index"]: r["title"] for r in p["records"]}
    assert titles[idx["own-1"]] == "Fire safety (annual refresher)"
    assert titles[idx["own-2"]].startswith("Safeguarding adults")
    assert p["verification"]["authentic"] is True
    # choose by name what to share: the fire safety record only
    fire = next(i for i, t in titles.items() if t.startswith("Fire safety"))
    c = make_code(gw, tok, DOB_OWN, entries=[fire])
    st, _, b = check(gw, c["code"], DOB_OWN)
    assert st == 200 and [r["index"] for r in jbody(b)["records"]] == [fire], b
    # readiness for a role; an unknown role is a 400
    st, _, b = request(gw, "GET", "/v1/passport?role=care-worker", token=tok)
    assert st == 200 and jbody(b)["readiness"]["verdict"] == "not_ready", b
    st, _, b = request(gw, "GET", "/v1/passport?role=astronaut", token=tok)
    assert st == 400 and err_code(b) == "INVALID_QUERY"
    # only with a worker token; and looking at one's own passport is not a view
    assert request(gw, "GET", "/v1/passport")[0] == 401
    assert request(gw, "GET", "/v1/passport", token=gw.provider_token())[0] == 401
    st, _, b = request(gw, "GET", "/v1/views", token=tok)
    assert [v["kind"] for v in jbody(b)["views"]] == ["check"]
