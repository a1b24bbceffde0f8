"""webhook_receiver.py -- a small threaded HTTP receiver for Standard Webhooks in tests.

Records every request, can answer an error status for the first N requests, and
verifies "v1a" Ed25519 signatures (Standard Webhooks) with python3-nacl, and "v1"
HMAC-SHA256 signatures with an endpoint's whsec_ secret (verify_v1, Python's hmac).

    with WebhookReceiver() as rx:           # listens on 127.0.0.1:<free port>
        rx.fail_next(2, status=500)         # the next two requests get 500
        ... point the sender at rx.url ...
        rx.set_public_key(open("notify.pub").read())   # "whpk_<base64>"
        assert rx.wait_for(lambda reqs: len(reqs) >= 3, timeout=10)
        assert all(rx.verify(r) for r in rx.requests)
"""

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time

import nacl.exceptions
import nacl.signing

TOLERANCE_S = 300  # Standard Webhooks' suggested timestamp tolerance


class Received:
    """One request as the receiver saw it."""

    def __init__(self, path, headers, body, answered):
        self.path = path            # request path
        self.headers = headers      # dict, header names lower-cased
        self.body = body            # raw body bytes
        self.answered = answered    # status code the receiver answered
        self.at = time.time()       # when it arrived

    @property
    def webhook_id(self):
        return self.headers.get("webhook-id")

    def json(self):
        return json.loads(self.body)


def parse_public_key(key):
    """Accept "whpk_<base64>", plain base64 or 32 raw bytes; return 32 bytes."""
    if isinstance(key, bytes) and len(key) == 32:
        return key
    if isinstance(key, bytes):
        key = key.decode()
    key = key.strip()
    if key.startswith("whpk_"):
        key = key[len("whpk_"):]
    raw = base64.b64decode(key, validate=True)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes, got %d" % len(raw))
    return raw


def verify_signature(public_key, headers, body, now=None, tolerance=TOLERANCE_S):
    """True when one of the v1a signatures in webhook-signature verifies over
    "<webhook-id>.<webhook-timestamp>.<body>" and the timestamp is within tolerance."""
    msg_id = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sigs = headers.get("webhook-signature")
    if not msg_id or not ts or not sigs:
        return False
    try:
        ts_int = int(ts)
    except ValueError:
        return False
    now = time.time() if now is None else now
    if abs(now - ts_int) > tolerance:
        return False
    vk = nacl.signing.VerifyKey(parse_public_key(public_key))
    signed = msg_id.encode() + b"." + ts.encode() + b"." + body
    for item in sigs.split(" "):
        version, _, value = item.partition(",")
        if version != "v1a" or not value:
            continue
        try:
            vk.verify(signed, base64.b64decode(value, validate=True))
            return True
        except (nacl.exceptions.BadSignatureError, ValueError):
            continue
    return False


def verify_v1(secret, headers, body, now=None, tolerance=TOLERANCE_S):
    """True when one of the "v1," signatures in webhook-signature is HMAC-SHA256, keyed with the
    bytes of the "whsec_<base64>" secret, over "<webhook-id>.<webhook-timestamp>.<body>" (compared
    in constant time) and the timestamp is within tolerance: the Standard Webhooks symmetric scheme,
    written here independently of carepass and of the reference libraries."""
    msg_id, ts, sigs = headers.get("webhook-id"), headers.get("webhook-timestamp"), headers.get("webhook-signature")
    if not msg_id or not ts or not sigs or not secret.startswith("whsec_"):
        return False
    try:
        if abs((time.time() if now is None else now) - int(ts)) > tolerance:
            return False
        key = base64.b64decode(secret[len("whsec_"):], validate=True)
    except ValueError:
        return False
    want = b"v1," + base64.b64encode(hmac.new(key, msg_id.encode() + b"." + ts.encode() + b"." + body,
                                              hashlib.sha256).digest())
    return any(hmac.compare_digest(item.encode(), want) for item in sigs.split(" "))


class WebhookReceiver:
    """A threaded HTTP server on 127.0.0.1 recording webhook requests."""

    def __init__(self, host="127.0.0.1", port=0, status=200, delay=0.0):
        self._lock = threading.Condition()
        self._requests = []
        self._fail_left = 0
        self._fail_status = 500
        self._status = status        # answer when not failing
        self._delay = delay          # seconds to sleep before answering (slow receiver)
        self._public_key = None
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length > 0 else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._answer_status()
                if receiver._delay:
                    time.sleep(receiver._delay)
                receiver._record(Received(self.path, headers, body, status))
                reply = b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, fmt, *args):  # keep test output quiet
                pass

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = None

    # -- lifecycle --------------------------------------------------------
    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._thread:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- configuration ----------------------------------------------------
    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def url(self):
        return "http://127.0.0.1:%d/hook" % self.port

    def fail_next(self, n, status=500):
        """Answer `status` to the next n requests."""
        with self._lock:
            self._fail_left = n
            self._fail_status = status

    def set_status(self, status):
        """Answer `status` to every request from now on (when not failing)."""
        with self._lock:
            self._status = status

    def set_delay(self, seconds):
        self._delay = seconds

    def set_public_key(self, key):
        """The sender's key: "whpk_<base64>", base64, or 32 raw bytes."""
        self._public_key = parse_public_key(key)

    # -- results ----------------------------------------------------------
    @property
    def requests(self):
        with self._lock:
            return list(self._requests)

    def clear(self):
        with self._lock:
            self._requests.clear()

    def verify(self, req, now=None):
        """Does req carry a valid signature from the configured public key?"""
        if self._public_key is None:
            raise RuntimeError("set_public_key() first")
        return verify_signature(self._public_key, req.headers, req.body,
                                now=req.at if now is None else now)

    def wait_for(self, predicate, timeout=10.0):
        """Wait until predicate(list of requests) is true; bounded by timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(list(self._requests)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
            return True

    # -- internals --------------------------------------------------------
    def _answer_status(self):
        with self._lock:
            if self._fail_left > 0:
                self._fail_left -= 1
                return self._fail_status
            return self._status

    def _record(self, req):
        with self._lock:
            self._requests.append(req)
            self._lock.notify_all()
