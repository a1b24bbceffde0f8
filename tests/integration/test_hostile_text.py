"""test_hostile_text.py -- text a standard protobuf parser would refuse never reaches the register
(Issue 10 item 3): invalid UTF-8 and NUL bytes inside string fields, sent as raw protobuf over
CurveZMQ and as JSON / NDJSON over POST /v1/events, are rejected with a stable reason code, the
register does not grow, every register entry still parses in Python's protobuf, and intake's
replies (which Python parses strictly) never echo the invalid bytes.

Python's protobuf will not put invalid UTF-8 into a string field, so the hostile requests are
made as a hostile client would: a valid request is packed and a marker in it is overwritten
with bytes of the same length.

The employer's check page (POST /check, rendered on the server) escapes every value it shows:
what was typed into the form (shown back after an error), the employer's label, and what comes
from the registries (a provider name with markup in it).
"""

import http.client
import json
import time
import urllib.parse

import pytest

from harness import CarepassSystem, event, to_pb_event
from register_check import Register

SERVICES = ("bus", "intake", "verify", "signer", "notify", "gateway")
# a provider name with markup: the registry is the operator's, but the page must not trust it
HOSTILE_NAME = 'Acme <script>alert("prov")</script> & <img src=x onerror=alert(1)> \'Ltd\''
HOSTILE = '"><script>alert(1)</script><svg onload=alert(2)>&amp;'


@pytest.fixture(scope="module")
def sys_(tmp_path_factory):
    s = CarepassSystem(tmp_path_factory.mktemp("hostile-text"), services=SERVICES,
                       extra_env={"CAREPASS_ACK_TIMEOUT_MS": 20000},
                       providers={"PRV-0001": {"name": HOSTILE_NAME}})
    s.token = s.provider_token()
    try:
        yield s
    finally:
        s.stop(show_logs=True)


def register_size(s):
    try:
        return Register(s.register_dir).size
    except FileNotFoundError:
        return 0


def all_entries_parse(s):
    """Every entry of the register parses in Python's protobuf (which checks UTF-8)."""
    reg = Register(s.register_dir)
    for i in range(reg.size):
        reg.passport_entry(i, s.register_pb)


def patched_request(events, patches, request_id="rq-1", ack=None):
    """A packed SubmitRequest with each (marker, replacement) of `patches` overwritten."""
    req = s_pb().SubmitRequest()
    for e in events:
        req.events.append(to_pb_event(e))
    req.ack = ack if ack is not None else s_pb().ACK_LEVEL_COMMITTED
    req.request_id = request_id
    raw = req.SerializeToString()
    for marker, repl in patches:
        assert len(marker) == len(repl) and raw.count(marker) == 1, marker
        raw = raw.replace(marker, repl)
    return raw


def s_pb():
    from carepass.v1 import event_pb2
    return event_pb2


def send_raw(s, raw):
    data = s.raw_send(raw, timeout=40.0)
    assert data is not None, "intake did not answer"
    rep = s.pb.SubmitReply()
    rep.ParseFromString(data)  # raises if the reply carries bytes that are not UTF-8
    return rep


def commit_marker(s, eid):
    """Commit one good event over ZeroMQ: anything sent before it has had its chance to land."""
    rep = s.submit([event(eid, qualification_code="RF-FIRE")])
    assert rep.replies[0].outcome == s.pb.OUTCOME_COMMITTED, rep


def test_zmq_invalid_utf8_and_nul_are_rejected(sys_):
    s = sys_
    commit_marker(s, "ht-warm")
    before = register_size(s)
    events = [
        event("ht-good", assessor_id="ASR-1"),
        event("ht-latin1", assessor_id="Jos-MARK1"),            # Latin-1 é
        event("ht-nul-ni", ni_number="AB123456CMARK2"),         # NUL after a valid NI number
        event("ht-nul-as", assessor_id="ASR-MARK3"),            # "ASR-\0x" would be kept as "ASR-"
        event("ht-badid-MARK4"),                                # event id that is not UTF-8
        event("ht-surr", assessor_id="MARK5"),                  # a UTF-16 surrogate as UTF-8
    ]
    raw = patched_request(events, [(b"Jos-MARK1", b"Jos\xe9MARK1"),
                                   (b"AB123456CMARK2", b"AB123456C\x00ARK2"),
                                   (b"ASR-MARK3", b"ASR-\x00ARK3"),
                                   (b"ht-badid-MARK4", b"ht-badid-\xffARK4"),
                                   (b"MARK5", b"\xed\xa0\x80K5")])
    rep = send_raw(s, raw)
    assert rep.error_code == "" and rep.request_id == "rq-1", rep
    got = [(r.provider_event_id, s.pb.Outcome.Name(r.outcome), r.reason_code) for r in rep.replies]
    assert got == [
        ("ht-good", "OUTCOME_COMMITTED", ""),
        ("ht-latin1", "OUTCOME_REJECTED", "INVALID_UTF8"),
        ("ht-nul-ni", "OUTCOME_REJECTED", "NUL_IN_STRING"),
        ("ht-nul-as", "OUTCOME_REJECTED", "NUL_IN_STRING"),
        ("", "OUTCOME_REJECTED", "INVALID_UTF8"),   # the bad id is not echoed
        ("ht-surr", "OUTCOME_REJECTED", "INVALID_UTF8"),
    ], got
    msgs = {r.provider_event_id: r.message for r in rep.replies}
    assert "assessor_id" in msgs["ht-latin1"] and "UTF-8" in msgs["ht-latin1"]
    assert "ni_number" in msgs["ht-nul-ni"] and "NUL" in msgs["ht-nul-ni"]
    assert "AB123456C" not in msgs["ht-nul-ni"]
    assert "provider_event_id" in msgs[""]
    commit_marker(s, "ht-after")
    assert register_size(s) == before + 2  # ht-good and ht-after only
    all_entries_parse(s)
    r = s.redis()
    for eid in ("ht-latin1", "ht-nul-ni", "ht-nul-as", "ht-surr"):
        assert r.hget(f"cp:ev:{{PRV-0001:{eid}}}", "state") is None, eid


def test_zmq_request_id_never_echoed_when_not_utf8(sys_):
    s = sys_
    before = register_size(s)
    for bad, code in ((b"rq-\xc3(c", "INVALID_UTF8"), (b"rq-\x00bc", "NUL_IN_STRING")):
        raw = patched_request([event("ht-rid", assessor_id="ASR-1")], [(b"rq-abc", bad)],
                              request_id="rq-abc")
        rep = send_raw(s, raw)
        assert rep.error_code == code and rep.request_id == "" and not rep.replies, rep
        assert "request_id" in rep.error_message
    commit_marker(s, "ht-after-rid")
    assert register_size(s) == before + 1
    assert s.redis().hget("cp:ev:{PRV-0001:ht-rid}", "state") is None


def post(s, body, ctype="application/json"):
    c = http.client.HTTPConnection("127.0.0.1", s.gateway_port, timeout=30)
    try:
        c.request("POST", "/v1/events?ack=committed", body=body,
                  headers={"Authorization": f"Bearer {s.token}", "Content-Type": ctype})
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


@pytest.mark.parametrize("ctype", ["application/json", "application/x-ndjson"])
def test_http_invalid_utf8_and_nul_are_rejected(sys_, ctype):
    s = sys_
    tag = "nd" if "ndjson" in ctype else "js"
    before = register_size(s)
    cases = [
        ("http-latin1", "Jos-MARK", b"Jos\xe9MARK"),           # raw invalid UTF-8 in the JSON text
        ("http-nul", "ASR-MARK", b"ASR-\\u0000x"),              # an escaped NUL
        ("http-surr", "ASR-MARK", b"ASR-\\ud800"),              # a lone surrogate escape
    ]
    for eid, marker, repl in cases:
        eid = f"{eid}-{tag}"
        ev = event(eid, assessor_id=marker)
        text = json.dumps(ev) if ctype.endswith("ndjson") else json.dumps([ev])
        body = text.encode().replace(marker.encode(), repl)
        st, j = post(s, body, ctype)
        # jansson refuses such JSON outright: the whole request is refused, nothing is stored
        assert st == 400 and j["error"]["code"] == "MALFORMED_JSON", (eid, st, j)
        assert s.redis().hget(f"cp:ev:{{PRV-0001:{eid}}}", "state") is None, eid
    commit_marker(s, f"ht-after-http-{tag}")
    assert register_size(s) == before + 1
    all_entries_parse(s)


def form(s, fields, ctype="application/x-www-form-urlencoded"):
    c = http.client.HTTPConnection("127.0.0.1", s.gateway_port, timeout=30)
    try:
        c.request("POST", "/check", body=urllib.parse.urlencode(fields).encode(), headers={"Content-Type": ctype})
        r = c.getresponse()
        return r.status, r.read().decode("utf-8")
    finally:
        c.close()


def assert_no_markup(page, *values):
    """None of the hostile values appears raw: every < and " of them is escaped."""
    for v in values:
        for bad in ("<script>alert", "<svg onload", "<img src=x", 'alert("prov")</script>'):
            if bad in v:
                assert bad not in page, (bad, page[:2000])


def test_check_page_escapes_everything_it_shows(sys_):
    s = sys_
    ni = "AB123456C"
    commit_marker(s, "ht-page")   # a record of PRV-0001 (the hostile name) for the worker
    tok = s.run_cli(["worker-token", ni], check=True).stdout.strip()
    c = http.client.HTTPConnection("127.0.0.1", s.gateway_port, timeout=30)
    c.request("POST", "/v1/share-codes", body=json.dumps({"date_of_birth": "1980-01-02"}),
              headers={"Authorization": f"Bearer {tok}", "Content-Type": "application/json"})
    code = json.loads(c.getresponse().read())["code"]
    c.close()
    # an error: every field shown back as typed, escaped
    st, page = form(s, {"share_code": HOSTILE[:30], "dob_day": "<b>", "dob_month": '"1', "dob_year": "<i>",
                        "role": HOSTILE, "employer": HOSTILE})
    assert st == 400 and "<title>Error: " in page
    assert_no_markup(page, HOSTILE)
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;svg onload=alert(2)&gt;&amp;amp;" in page
    assert 'value="&lt;b&gt;"' in page and 'value="&quot;1"' in page and "<b>" not in page
    assert 'value="astronaut"' not in page and HOSTILE not in page   # an unknown role is not shown back
    # a bidi control in the label: refused, and not shown back
    st, page = form(s, {"share_code": code, "dob_day": "2", "dob_month": "1", "dob_year": "1980",
                        "employer": "Oak\u202eTree" + HOSTILE})
    assert st == 400 and "\u202e" not in page
    assert_no_markup(page, HOSTILE)
    # the result: the provider's hostile name and the employer's label, escaped
    st, page = form(s, {"share_code": code, "dob_day": "2", "dob_month": "1", "dob_year": "1980", "employer": HOSTILE})
    assert st == 200, page[:2000]
    assert_no_markup(page, HOSTILE, HOSTILE_NAME)
    assert "Acme &lt;script&gt;alert(&quot;prov&quot;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt; " \
           "&#39;Ltd&#39;" in page
    # the worker sees the label as it was given (it is their view's JSON, not HTML)
    c = http.client.HTTPConnection("127.0.0.1", s.gateway_port, timeout=30)
    c.request("GET", "/v1/views", headers={"Authorization": f"Bearer {tok}"})
    views = json.loads(c.getresponse().read())["views"]
    c.close()
    assert views[0]["employer"] == HOSTILE
    # text that is not UTF-8 never reaches a page
    c = http.client.HTTPConnection("127.0.0.1", s.gateway_port, timeout=30)
    c.request("POST", "/check", body=b"share_code=%ff%fe&dob_day=1&dob_month=1&dob_year=1980&employer=%c3%28",
              headers={"Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 400
    body.decode("utf-8")   # raises if the page carries the invalid bytes
