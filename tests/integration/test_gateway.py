"""test_gateway.py -- the HTTP gateway against a running system (real Redis, binaries, ZeroMQ):
every core route's happy path and each error code, provider tokens, the read-only log and its
path-traversal defences, body and time limits (413, slowloris), keep-alive, and the promise
that events sent over HTTP get the same answers as over ZeroMQ.

Tokens are also minted here in Python from the deployment secret, independently of the C
code (format in common/cp_token.h), to make expired tokens and tokens for unknown providers.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import socket
import struct
import time

import pytest

from harness import SOURCE_DIR, CarepassSystem, event

TIMEOUT_S = 2          # CAREPASS_GATEWAY_TIMEOUT_S for this module (slowloris test)
MAX_BODY = 65536       # CAREPASS_GATEWAY_MAX_BODY for this module (413 test)
SERVICES = ("bus", "intake", "verify", "signer", "notify", "gateway")


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    s = CarepassSystem(tmp_path_factory.mktemp("gateway"), services=SERVICES,
                       extra_env={"CAREPASS_GATEWAY_TIMEOUT_S": TIMEOUT_S,
                                  "CAREPASS_GATEWAY_MAX_BODY": MAX_BODY,
                                  "CAREPASS_ACK_TIMEOUT_MS": 15000})
    s.token = s.provider_token()
    try:
        yield s
    finally:
        s.stop(show_logs=True)


# ---- helpers -------------------------------------------------------------------

def request(s, method, path, body=None, headers=None, conn=None, port=None):
    """One request (to the public port, or port); returns (status, headers dict (lower-case
    names), body bytes)."""
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port or s.gateway_port, timeout=30)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        if own:
            c.close()


def error_code(body):
    j = json.loads(body)
    assert set(j["error"]) >= {"code", "message"} and j["error"]["message"], j
    return j["error"]["code"]


def post_events(s, events, ack="accepted", token=None, ctype="application/json", raw=None):
    body = raw if raw is not None else json.dumps(events).encode()
    return request(s, "POST", f"/v1/events?ack={ack}", body,
                   {"Authorization": f"Bearer {token or s.token}", "Content-Type": ctype})


def mint_token(s, subject, expiry, kind="cpp_", version=2, token_id=None):
    """A token made in Python from the deployment secret (see cp_token.h); version 1 is the
    retired layout without a token id."""
    secret = bytes.fromhex((s.keys_dir / "token.secret").read_text().strip())
    key = hashlib.blake2b(b"carepass/token/v1", digest_size=32, key=secret).digest()
    tid = b"" if version == 1 else (token_id or os.urandom(16))
    payload = bytes([version]) + tid + struct.pack(">Q", expiry) + bytes([len(subject)]) + subject.encode()
    tag = hmac.new(key, kind.encode() + payload, hashlib.sha512).digest()[:32]
    return kind + base64.urlsafe_b64encode(payload + tag).decode().rstrip("=")


def replies_by_id(body):
    return {r["provider_event_id"]: r for r in json.loads(body)["replies"]}


# ---- public routes ---------------------------------------------------------------

def test_healthz_and_keys(gw):
    st, h, body = request(gw, "GET", "/healthz")
    assert st == 200 and json.loads(body)["status"] == "ok"
    assert h["content-type"] == "application/json"
    st, h, body = request(gw, "GET", "/v1/vkey")
    assert st == 200 and body.decode().strip() == (gw.register_dir / "vkey").read_text().strip()
    assert h["content-type"].startswith("text/plain")
    st, h, body = request(gw, "GET", "/v1/webhook-key")
    assert st == 200 and body.decode().strip() == (gw.keys_dir / "notify.pub").read_text().strip()
    assert body.startswith(b"whpk_")


def test_metrics(gw):
    assert post_events(gw, [event("m-1")], ack="committed")[0] == 200
    request(gw, "GET", "/no/such/route")
    needles = ('carepass_gateway_requests_total{route="events_post",status="200"}',
               'carepass_gateway_requests_total{route="unmatched",status="404"}',
               'carepass_gateway_events_total{outcome="committed"}',
               'carepass_gateway_request_duration_seconds_bucket{route="events_post",le="+Inf"}',
               "carepass_queue_pending ", "carepass_webhook_due ", "carepass_webhook_dead ",
               "carepass_gateway_redis_up 1")
    # a request is counted when libmicrohttpd reports it completed (after the client
    # may already have its answer), so look again for a bounded while
    deadline = time.monotonic() + 5
    while True:
        st, h, body = request(gw, "GET", "/metrics", port=gw.metrics_port)
        assert st == 200 and h["content-type"].startswith("text/plain; version=0.0.4")
        text = body.decode()
        missing = [n for n in needles if n not in text]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not missing, missing
    for line in text.splitlines():  # every sample line is "name{labels} value"
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])
    # operators only: the employers' port does not serve it (live counters are rate-limit
    # feedback), health is on both, and the operator port serves nothing else
    st, _, body = request(gw, "GET", "/metrics")
    assert st == 404 and error_code(body) == "ROUTE_NOT_FOUND"
    assert request(gw, "GET", "/healthz")[0] == 200
    assert request(gw, "GET", "/healthz", port=gw.metrics_port)[0] == 200
    st, _, body = request(gw, "GET", "/v1/vkey", port=gw.metrics_port)
    assert st == 404 and error_code(body) == "ROUTE_NOT_FOUND"


def test_openapi_document_is_served(gw):
    """GET /v1/openapi.json serves the document in the repository, byte for byte, as JSON; every
    other response of these tests is checked against it (api_contract.py)."""
    st, h, body = request(gw, "GET", "/v1/openapi.json")
    assert st == 200 and h["content-type"] == "application/json"
    src = (SOURCE_DIR / "services" / "gateway" / "web" / "openapi.json").read_bytes()
    assert body == src
    doc = json.loads(body)
    assert doc["openapi"] == "3.1.0" and "/v1/check" in doc["paths"]


def test_unknown_route_and_wrong_method(gw):
    st, _, body = request(gw, "GET", "/v2/whatever")
    assert st == 404 and error_code(body) == "ROUTE_NOT_FOUND"
    st, h, body = request(gw, "DELETE", "/healthz")
    assert st == 405 and error_code(body) == "METHOD_NOT_ALLOWED" and "GET" in h["allow"]
    st, h, body = request(gw, "GET", "/v1/events")
    assert st == 405 and h["allow"] == "POST"


# ---- the read-only log -------------------------------------------------------------

def test_log_checkpoint_and_tiles(gw):
    assert post_events(gw, [event("log-1"), event("log-2", qualification_code="RF-MH")],
                       ack="committed")[0] == 200
    st, h, note = request(gw, "GET", "/log/checkpoint")
    assert st == 200 and h["content-type"].startswith("text/plain") and "no-cache" in h["cache-control"]
    lines = note.decode().split("\n")
    size = int(lines[1])
    assert size >= 3 and note == (gw.register_dir / "checkpoint").read_bytes()
    w = size % 256
    for rel in (f"tile/0/000.p/{w}", f"tile/entries/000.p/{w}"):
        st, h, body = request(gw, "GET", "/log/" + rel)
        assert st == 200, rel
        assert h["content-type"] == "application/octet-stream"
        assert "max-age=31536000" not in h["cache-control"]  # partial tiles are not immutable
        assert body == (gw.register_dir / rel).read_bytes()
    assert len(request(gw, "GET", f"/log/tile/0/000.p/{w}")[2]) == 32 * w
    # HEAD is served by the GET route, without a body
    st, h, body = request(gw, "HEAD", "/log/checkpoint")
    assert st == 200 and body == b""
    # beyond the checkpoint: 404 (a tile that does not exist at this size)
    st, _, body = request(gw, "GET", f"/log/tile/0/000.p/{w + 1}" if w < 255 else "/log/tile/0/001")
    assert st == 404 and error_code(body) == "NOT_FOUND"
    st, _, body = request(gw, "GET", "/log/tile/0/000")  # the full tile does not exist yet
    assert st == 404


@pytest.mark.parametrize("path", [
    "/log/tile/../checkpoint", "/log/tile/%2e%2e/checkpoint", "/log/tile/%2E%2E/%2e%2e/vkey",
    "/log/tile/0/../../checkpoint", "/log/tile//etc/passwd", "/log/tile/%2fetc%2fpasswd",
    "/log/tile/0/x000/001", "/log/tile/0/1", "/log/tile/00/000", "/log/tile/0/000.p/0",
    "/log/tile/0/000.p/256", "/log/tile/0/000.p/01", "/log/tile/entries/000.p/1/../../../vkey",
    "/log/tile/0/000.p/1%00", "/log/tile/entries/-01", "/log/tile/9/000", "/log/tile/",
    "/log/tile/0/000/", "/log/../register/checkpoint", "/log/tile/0/000.p/1/",
])
def test_log_path_traversal(gw, path):
    st, h, body = request(gw, "GET", path)
    assert st in (400, 404), (path, st)
    assert h["content-type"] == "application/json"
    assert error_code(body) in ("BAD_PATH", "NOT_FOUND", "ROUTE_NOT_FOUND")
    assert b"BEGIN" not in body and b"PRIVATE" not in body and b"root:" not in body


# ---- provider events -----------------------------------------------------------------

def test_events_happy_path_json_and_ndjson(gw):
    st, h, body = post_events(gw, [event("hp-1"), event("hp-2", completion_date="2999-01-01")],
                              ack="committed")
    assert st == 200, body
    rep = replies_by_id(body)
    assert rep["hp-1"]["outcome"] == "committed" and isinstance(rep["hp-1"]["entry_index"], int)
    assert rep["hp-2"]["outcome"] == "rejected" and rep["hp-2"]["reason_code"] == "DATE_IN_FUTURE"
    nd = "\n".join(json.dumps(e) for e in [event("nd-1"), event("nd-2", kind="completion")]) + "\n\n"
    st, _, body = post_events(gw, None, raw=nd.encode(), ctype="application/x-ndjson")
    assert st == 200, body
    assert {r["outcome"] for r in json.loads(body)["replies"]} == {"accepted"}
    assert gw.redis().hget("cp:ev:{PRV-0001:nd-1}", "state") in (b"accepted", b"committed")


def test_events_provider_comes_from_the_token(gw):
    st, _, body = post_events(gw, [event("pm-1", provider_id="PRV-0002"), event("pm-2", provider_id="PRV-0001")])
    assert st == 200
    rep = replies_by_id(body)
    assert rep["pm-1"]["reason_code"] == "PROVIDER_MISMATCH"
    assert rep["pm-2"]["outcome"] == "accepted"
    assert gw.redis().hget("cp:ev:{PRV-0002:pm-1}", "state") is None


def test_events_tokens(gw):
    ev = [event("tok-1")]
    st, h, body = request(gw, "POST", "/v1/events", json.dumps(ev).encode())
    assert st == 401 and error_code(body) == "UNAUTHENTICATED" and "bearer" in h["www-authenticate"].lower()
    st, _, body = post_events(gw, ev, token="cpp_garbage")
    assert st == 401 and error_code(body) == "INVALID_TOKEN"
    forged = gw.token[:-3] + ("AAA" if not gw.token.endswith("AAA") else "BBB")
    st, _, body = post_events(gw, ev, token=forged)
    assert st == 401 and error_code(body) == "INVALID_TOKEN"
    st, _, body = post_events(gw, ev, token=mint_token(gw, "PRV-0001", int(time.time()) - 5))
    assert st == 401 and error_code(body) == "TOKEN_EXPIRED"
    st, _, body = post_events(gw, ev, token=mint_token(gw, "PRV-0001", int(time.time()) + 60, kind="cpw_"))
    assert st == 401 and error_code(body) == "INVALID_TOKEN"
    st, _, body = post_events(gw, ev, token=mint_token(gw, "PRV-9999", int(time.time()) + 60))
    assert st == 403 and error_code(body) == "PROVIDER_UNKNOWN"
    # a Python-minted token for a real provider works: the format is what cp_token.h says
    st, _, body = post_events(gw, ev, token=mint_token(gw, "PRV-0001", int(time.time()) + 60))
    assert st == 200, body
    # the retired version 1 (no token id) and a lifetime past the provider maximum are refused
    st, _, body = post_events(gw, ev, token=mint_token(gw, "PRV-0001", int(time.time()) + 60, version=1))
    assert st == 401 and error_code(body) == "INVALID_TOKEN"
    st, _, body = post_events(gw, ev, token=mint_token(gw, "PRV-0001", int(time.time()) + 3650 * 86400))
    assert st == 401 and error_code(body) == "INVALID_TOKEN" and "lifetime" in json.loads(body)["error"]["message"]
    assert gw.run_cli(["provider-token", "PRV-9999"]).returncode == 1


def test_events_bad_bodies(gw):
    st, _, body = post_events(gw, None, raw=b'[{"provider_event_id": "x",')
    assert st == 400 and error_code(body) == "MALFORMED_JSON"
    st, _, body = post_events(gw, None, raw=b'{"provider_event_id": "x"}')
    assert st == 400 and error_code(body) == "MALFORMED_JSON"
    st, _, body = post_events(gw, None, raw=b'{"a":1}\nnot json\n', ctype="application/x-ndjson")
    assert st == 400 and error_code(body) == "MALFORMED_JSON" and "line 2" in json.loads(body)["error"]["message"]
    st, _, body = post_events(gw, [event("wt-1", completion_date=20250303)])
    assert st == 400 and error_code(body) == "INVALID_FIELD" and "completion_date" in body.decode()
    st, _, body = post_events(gw, [event("wt-2"), 5])
    assert st == 400 and error_code(body) == "INVALID_FIELD"
    st, _, body = post_events(gw, [event("wt-3", evidence_hash="zz")])
    assert st == 400 and error_code(body) == "INVALID_FIELD"
    st, _, body = post_events(gw, [event("wt-4", kind="sideways")])
    assert st == 400 and error_code(body) == "INVALID_FIELD"
    st, _, body = post_events(gw, [])
    assert st == 400 and error_code(body) == "BATCH_EMPTY"
    st, _, body = post_events(gw, [event("ack-1")], ack="sometime")
    assert st == 400 and error_code(body) == "INVALID_ACK_LEVEL"
    st, _, body = post_events(gw, [event("ct-1")], ctype="text/csv")
    assert st == 415 and error_code(body) == "UNSUPPORTED_MEDIA_TYPE"
    # a wrong-length evidence hash is a per-event rejection, as over ZeroMQ
    st, _, body = post_events(gw, [event("eh-1", evidence_hash="ab" * 31)])
    assert st == 200 and replies_by_id(body)["eh-1"]["reason_code"] == "INVALID_EVIDENCE_HASH"
    # nothing personal is echoed
    st, _, body = post_events(gw, [event("ni-1", ni_number="QQ999999Z")])
    assert st == 200 and b"QQ999999Z" not in body
    log = (gw.log_dir / "gateway.log").read_text()
    assert "AB123456C" not in log and "QQ999999Z" not in log


def test_events_huge_body(gw):
    big = json.dumps([event(f"big-{i}", assessor_id="A" * 60) for i in range(1000)]).encode()
    assert len(big) > MAX_BODY
    st, _, body = post_events(gw, None, raw=big)
    assert st == 413 and error_code(body) == "BODY_TOO_LARGE"
    # without Content-Length (chunked): refused once the limit is passed
    c = http.client.HTTPConnection("127.0.0.1", gw.gateway_port, timeout=30)
    try:
        c.putrequest("POST", "/v1/events")
        c.putheader("Authorization", f"Bearer {gw.token}")
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        try:
            for i in range(0, len(big), 8192):
                chunk = big[i:i + 8192]
                c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            c.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed early: fine
        try:
            r = c.getresponse()
            assert r.status == 413 and error_code(r.read()) == "BODY_TOO_LARGE"
        except (http.client.RemoteDisconnected, ConnectionResetError):
            pass  # the answer was sent but the reset for the unread upload discarded it
    finally:
        c.close()
    assert request(gw, "GET", "/healthz")[0] == 200


def test_http_and_zeromq_give_the_same_answers(gw):
    evs = [event("x-1", qualification_code="RF-FIRE"),
           event("x-2", qualification_code="NOPE-1"),
           event("x-3", completion_date="1980-01-01")]
    st, _, body = post_events(gw, evs, ack="committed")
    assert st == 200
    http_rep = replies_by_id(body)
    zmq_rep = gw.submit(evs, ack="committed")
    assert not zmq_rep.error_code
    for r in zmq_rep.replies:
        h = http_rep[r.provider_event_id]
        assert gw.pb.Outcome.Name(r.outcome).replace("OUTCOME_", "").lower() == h["outcome"]
        assert r.reason_code == h.get("reason_code", "")
        if h["outcome"] == "committed":
            assert r.entry_index == h["entry_index"]
    # the other way round: first over ZeroMQ, then the same batch over HTTP
    evs2 = [event("y-1", qualification_code="RF-MH", completion_date="2025-02-02", assessor_id="ASR-1")]
    z = gw.submit(evs2, ack="committed").replies[0]
    st, _, body = post_events(gw, evs2, ack="committed")
    h = replies_by_id(body)["y-1"]
    assert z.outcome == gw.pb.OUTCOME_COMMITTED, z
    assert h["outcome"] == "committed" and h["entry_index"] == z.entry_index
    # a different event under a used id is refused the same way on both edges
    changed = [event("y-1", qualification_code="RF-MH", completion_date="2025-02-03", assessor_id="ASR-1")]
    assert replies_by_id(post_events(gw, changed)[2])["y-1"]["reason_code"] == "EVENT_ID_REUSED"
    assert gw.submit(changed, ack="accepted").replies[0].reason_code == "EVENT_ID_REUSED"


# ---- connections -------------------------------------------------------------------

def test_keep_alive(gw):
    c = http.client.HTTPConnection("127.0.0.1", gw.gateway_port, timeout=10)
    try:
        request(gw, "GET", "/healthz", conn=c)
        sock = c.sock
        for i in range(20):
            st, h, _ = request(gw, "GET", "/log/checkpoint", conn=c)
            assert st == 200 and h.get("connection", "").lower() != "close"
            assert c.sock is sock  # the same TCP connection served every request
        st, _, body = request(gw, "GET", "/nope", conn=c)  # errors keep the connection too
        assert st == 404 and c.sock is sock
    finally:
        c.close()


def test_slowloris_is_cut_off(gw):
    s = socket.create_connection(("127.0.0.1", gw.gateway_port), timeout=TIMEOUT_S + 10)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        closed = False
        # dribble nothing more: the server must close within its timeout (plus slack)
        while time.monotonic() - t0 < TIMEOUT_S + 8:
            try:
                if s.recv(4096) == b"":
                    closed = True
                    break
            except (ConnectionResetError, socket.timeout):
                closed = True
                break
        assert closed, "the gateway kept a half-sent request open past its timeout"
        assert time.monotonic() - t0 >= TIMEOUT_S - 0.5
    finally:
        s.close()
    # (MHD's timeout is an idle timeout: a client dribbling a byte per second is bounded by
    # GATEWAY_CONN_MEMORY and GATEWAY_PER_IP_LIMIT instead.) The service stays healthy.
    assert request(gw, "GET", "/healthz")[0] == 200


def test_oversized_headers(gw):
    st, _, _ = request(gw, "GET", "/healthz", headers={"X-Big": "a" * 100000})
    assert st in (413, 431)
    assert request(gw, "GET", "/healthz")[0] == 200


def test_per_ip_limit_counts_every_loop(tmp_path):
    """GATEWAY_PER_IP_LIMIT holds for the gateway as a whole: with 4 event loops (each its own MHD
    daemon on the shared port) a 4th connection from one address is refused when the limit is 3,
    wherever the kernel sent the other three; closing one frees its place. (A 404 is a complete
    answer that needs no other service.)"""
    s = CarepassSystem(tmp_path, services=("gateway",),
                       extra_env={"CAREPASS_GATEWAY_THREADS": 4, "CAREPASS_GATEWAY_PER_IP_LIMIT": 3})
    held = []
    try:
        for _ in range(3):
            c = http.client.HTTPConnection("127.0.0.1", s.gateway_port, timeout=10)
            assert request(s, "GET", "/no-such-route", conn=c)[0] == 404
            held.append(c)
        extra = http.client.HTTPConnection("127.0.0.1", s.gateway_port, timeout=10)
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
            request(s, "GET", "/no-such-route", conn=extra)
        extra.close()
        held.pop().close()
        deadline = time.monotonic() + 10
        while True:  # the gateway notices the close on its next turn
            try:
                assert request(s, "GET", "/no-such-route")[0] == 404
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                assert time.monotonic() < deadline, "a closed connection's place was never freed"
                time.sleep(0.05)
    finally:
        for c in held:
            c.close()
        s.stop(show_logs=True)


# ---- hostile input (Issue 10 item 3) ------------------------------------------------

def raw_exchange(s, data, timeout=10):
    """Send the exact bytes on a fresh connection; return everything read until the server
    closes (or the first complete answer, when it keeps the connection open)."""
    sock = socket.create_connection(("127.0.0.1", s.gateway_port), timeout=timeout)
    try:
        sock.sendall(data)
        out = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
            head, sep, rest = out.partition(b"\r\n\r\n")
            if sep:
                m = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if m and len(rest) >= int(m[0].split(b":", 1)[1]):
                    break
        return out
    finally:
        sock.close()


def parse_raw(out):
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode("latin-1")
    return status, headers, body


@pytest.fixture
def lone_gw(tmp_path):
    """A gateway of its own per test: a crash here takes no other test with it."""
    s = CarepassSystem(tmp_path, services=("gateway",))
    try:
        yield s
    finally:
        s.stop(show_logs=True)


def assert_gateway_alive(s):
    assert s.running("gateway"), "one request stopped the gateway"
    st, h, body = request(s, "GET", "/healthz")
    assert st in (200, 503) and "status" in json.loads(body)


@pytest.mark.parametrize("data", [
    b"P\xffOST /v1/check HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",   # the probe's request
    b"\xc3( /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",        # invalid UTF-8 method
    b"GE\x01T /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",      # a control byte
    b"GET /v1/\xff\xfe/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",    # invalid UTF-8 path
    b"GET /log/tile/\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
    b"Connection: close\r\nContent-Length: 2\r\n\r\n{}",                       # invalid UTF-8 token
    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: \xff\r\n"
    b"Connection: close\r\nContent-Length: 2\r\n\r\n[]",
])
def test_hostile_bytes_never_stop_the_gateway(lone_gw, data):
    out = raw_exchange(lone_gw, data)
    if out:  # an answer, when there is one, is a JSON error of fixed, printable text
        st, h, body = parse_raw(out)
        assert 400 <= st < 600
        if h.get("content-type", "").startswith("application/json"):
            j = json.loads(body.decode("utf-8"))
            assert j["error"]["code"] and j["error"]["message"]
            assert all(0x20 <= b < 0x7f for b in body.rstrip(b"\n")), body
    assert_gateway_alive(lone_gw)


def test_405_does_not_echo_unchecked_method(lone_gw):
    st, h, body = parse_raw(raw_exchange(
        lone_gw, b"P\xffOST /v1/check HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert st == 405 and error_code(body) == "METHOD_NOT_ALLOWED" and h["allow"] == "POST"
    assert b"\xff" not in body and "POST" in json.loads(body)["error"]["message"]
    st, _, body = request(lone_gw, "DELETE", "/healthz")  # a plain token is still named
    assert st == 405 and json.loads(body)["error"]["message"].startswith("DELETE ")
    assert_gateway_alive(lone_gw)


def test_json_responses_carry_security_headers(gw):
    csp = "default-src 'none'; frame-ancestors 'none'"
    for method, path, headers in (("GET", "/healthz", None), ("GET", "/v2/whatever", None),
                                  ("DELETE", "/healthz", None),
                                  ("POST", "/v1/events", {"Content-Type": "application/json"})):
        st, h, _ = request(gw, method, path, b"[]" if method == "POST" else None, headers)
        assert h["content-type"] == "application/json", (path, st)
        assert h.get("x-content-type-options") == "nosniff", (path, st)
        assert h.get("content-security-policy") == csp, (path, st)
    st, h, _ = request(gw, "GET", "/")  # the page keeps its own policy
    assert st == 200 and "script-src 'self'" in h["content-security-policy"]


def answer_and_close(s, data):
    """Send data; return (status, error code, closed) where closed says the gateway ended the
    connection after its answer instead of reading the bytes that follow as a new request."""
    sock = socket.create_connection(("127.0.0.1", s.gateway_port), timeout=15)
    try:
        sock.sendall(data)
        out, closed = b"", False
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            except socket.timeout:
                break
            if not chunk:
                closed = True
                break
            out += chunk
        first = out.split(b"\r\n\r\n", 1)
        length = int(parse_raw(out)[1]["content-length"])
        one = first[0] + b"\r\n\r\n" + first[1][:length]
        st, _, body = parse_raw(one)
        assert out == one, "the bytes after the refused request were answered as a request"
        return st, error_code(body), closed
    finally:
        sock.close()


@pytest.mark.parametrize("te", [b"chunked", b"Chunked", b"gzip"])
def test_content_length_with_transfer_encoding_is_refused(lone_gw, te):
    """Both framings at once is the request-smuggling shape: 400, and the connection is closed so
    no byte after it is read as a request (here a smuggled GET)."""
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    data = (b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nTransfer-Encoding: %s\r\n\r\n" % (len(body), te)) + body
    st, code, closed = answer_and_close(lone_gw, data)
    assert st == 400 and code == "BAD_FRAMING" and closed
    assert_gateway_alive(lone_gw)


@pytest.mark.parametrize("te", [b"gzip", b"gzip, chunked", b"identity", b"chunked, chunked"])
def test_unknown_transfer_coding_is_not_implemented(lone_gw, te):
    data = (b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: %s\r\n\r\n0\r\n\r\n" % te)
    st, code, closed = answer_and_close(lone_gw, data)
    assert st == 501 and code == "TRANSFER_CODING_NOT_IMPLEMENTED" and closed
    assert_gateway_alive(lone_gw)


def test_chunked_body_still_accepted(gw):
    """The one transfer coding HTTP/1.1 requires keeps working (with or without a body route)."""
    body = json.dumps([event("te-1")]).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    data = (b"POST /v1/events?ack=accepted HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            % gw.token.encode()) + chunked
    st, _, resp = parse_raw(raw_exchange(gw, data))
    assert st == 200 and replies_by_id(resp)["te-1"]["outcome"] == "accepted"
