"""test_webhook_secrets.py -- Standard Webhooks "v1" (HMAC-SHA256 with the endpoint's whsec_ secret)
beside "v1a" (Ed25519), end to end with every service and the gateway.

Real deliveries are captured at WebhookReceivers and checked by the Standard Webhooks reference
library itself (npm standardwebhooks, tests/node_modules, through verify_standardwebhooks.mjs:
``new Webhook(secret).verify(payload, headers)``) and by the project's own Ed25519 check
(python3-nacl, webhook_receiver.verify):

- a provider without a secret gets v1a only, and notify logs that once; `carepass webhook-secret`
  makes one (shown once), a running notify picks it up, and the provider's event.accepted and
  record.committed notices then verify with it;
- an employer's subscription returns its secret once (201; the 200 repeat does not), and its
  record.revoked verifies with it;
- a rotation while a delivery is being retried: attempts signed before it verify with the old
  secret only, attempts during the overlap with the old and the new one; once the overlap is over,
  only the new one. The same for a provider's rotation with the CLI;
- bad input: rotating an unknown, malformed or ended subscription is 404 NOT_FOUND with a sentence;
  `carepass webhook-secret` for a provider not in the registry fails (exit 1) and makes nothing;
- no secret appears in any service log.
"""

import base64
import datetime
import http.client
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness import CarepassSystem, event
from webhook_receiver import WebhookReceiver, verify_v1

SERVICES = ("bus", "intake", "verify", "signer", "notify", "gateway")
HERE = Path(__file__).resolve().parent
NODE = shutil.which("node") or ("/usr/bin/node" if os.path.exists("/usr/bin/node") else None)
MODULE = HERE.parent / "node_modules" / "standardwebhooks" / "package.json"
SECRET_RE = re.compile(r"^whsec_[A-Za-z0-9+/]{43}=$")   # 32 bytes, padded base64
NI, DOB = "AB123456C", "1986-02-17"

pytestmark = pytest.mark.skipif(
    NODE is None or not MODULE.exists(),
    reason="needs node and the npm package standardwebhooks (npm ci --prefix tests --no-audit --no-fund); "
           "CI installs both with deploy/install-deps.sh")


def day(offset):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)).isoformat()


def sw_verify(secret, reqs):
    """Verdicts of the reference library on each captured request with this secret."""
    items = [{"secret": secret, "headers": q.headers, "body_b64": base64.b64encode(q.body).decode()} for q in reqs]
    p = subprocess.run([NODE, str(HERE / "verify_standardwebhooks.mjs")], input=json.dumps(items),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert len(out) == len(reqs)
    return [o["ok"] for o in out]


def versions(q):
    return [s.partition(",")[0] for s in q.headers["webhook-signature"].split(" ")]


def request(s, method, path, body=None, token=None):
    c = http.client.HTTPConnection("127.0.0.1", s.gateway_port, timeout=30)
    try:
        h = {}
        if token:
            h["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(r.read() or b"{}")
    finally:
        c.close()


@pytest.fixture(scope="module")
def rx():
    made = {name: WebhookReceiver().start() for name in ("provider", "employer")}
    yield made
    for r in made.values():
        r.stop()


@pytest.fixture(scope="module")
def sysm(tmp_path_factory, rx):
    d = tmp_path_factory.mktemp("whsec")
    s = CarepassSystem(d / "sys", services=SERVICES,
                       providers={"PRV-0001": {"webhook_url": rx["provider"].url}},
                       extra_env={"CAREPASS_WEBHOOK_BACKOFF_MS": "200", "CAREPASS_WEBHOOK_BACKOFF_MAX_MS": "400",
                                  "CAREPASS_ACK_TIMEOUT_MS": "15000"})
    pub = (s.keys_dir / "notify.pub").read_text()
    for r in rx.values():
        r.set_public_key(pub)
    s.secrets_seen = []
    ok = False
    try:
        yield s
        ok = True
    finally:
        s.stop(show_logs=not ok)


def commit(s, eid, **kw):
    r = s.submit([event(eid, ni_number=NI, completion_date=day(-30), **kw)]).replies[0]
    assert r.outcome == s.pb.OUTCOME_COMMITTED, (r.reason_code, r.message)
    return r


def revoke(s, eid):
    return commit(s, eid + "-rev", kind="revocation", revokes_event_id=eid, revocation_reason="ISSUED_IN_ERROR")


def ok_reqs(r, pred=lambda q: True):
    return [q for q in r.requests if 200 <= q.answered < 300 and pred(q)]


def make_subscription(s, rxe, path):
    tok = s.run_cli(["worker-token", NI, "--days", "2"], check=True).stdout.strip()
    st, _, code = request(s, "POST", "/v1/share-codes", {"date_of_birth": DOB, "allow_subscriptions": True}, tok)
    assert st == 201, code
    body = {"share_code": code["code"], "date_of_birth": DOB, "url": rxe.url + path, "employer": "Sunrise Care",
            "events": ["record.revoked"]}
    st, hdr, sub = request(s, "POST", "/v1/subscriptions", body)
    assert st == 201, sub
    assert SECRET_RE.match(sub["secret"]), "the 201 carries a whsec_ secret of 32 bytes"
    assert "no-store" in hdr.get("cache-control", "")
    # a repeat is the same subscription, without the secret, saying how to get a new one
    st, _, again = request(s, "POST", "/v1/subscriptions", body)
    assert st == 200 and again["existing"] is True and again["id"] == sub["id"], again
    assert "secret" not in again and "/secret" in again["message"], again
    with s.redis() as r:
        assert r.cmd("HGET", f"cp:sub:{{{sub['id']}}}", "secret").decode() == sub["secret"]
    s.secrets_seen.append(sub["secret"])
    return sub


def test_provider_and_subscriber_deliveries_verify_with_the_reference_library(sysm, rx):
    s, prx, erx = sysm, rx["provider"], rx["employer"]
    # 1. no secret yet: v1a only, and one warning naming the provider
    commit(s, "w-0")
    commit(s, "w-0b")
    assert prx.wait_for(lambda reqs: len(ok_reqs(prx, lambda q: q.json()["type"] == "record.committed")) >= 2, 20)
    for q in prx.requests:
        assert versions(q) == ["v1a"] and prx.verify(q), q.headers
    warn = [l for l in s.log_lines("notify") if "no webhook secret" in l.get("msg", "")]
    assert len(warn) == 1 and warn[0]["provider"] == "PRV-0001" and warn[0]["level"] == "warn", warn

    # 2. the operator makes the provider's secret; the running notify picks it up
    cp = s.run_cli(["webhook-secret", "PRV-0001"], check=True)
    secret = cp.stdout.strip()
    assert SECRET_RE.match(secret) and "notify uses it" in cp.stderr
    s.secrets_seen.append(secret)
    assert oct((s.keys_dir / "webhook-secrets").stat().st_mode & 0o777) == "0o600"
    again = s.run_cli(["webhook-secret", "PRV-0001"], check=True)
    assert again.stdout == "" and "already has a webhook secret" in again.stderr and "--rotate" in again.stderr
    assert s.wait_for(lambda: any("webhook secret store loaded" in l.get("msg", "") for l in s.log_lines("notify")),
                      10, what="notify re-reading the store")
    time.sleep(0.5)                           # no attempt signed before the re-read is still on its way
    prx.clear()
    first = commit(s, "w-1")

    # 3. an employer subscribes and hears of the revocation
    sub = make_subscription(s, erx, "/sub-a")
    revoke(s, "w-1")
    assert prx.wait_for(lambda reqs: {"event.accepted", "record.committed", "record.revoked"} <=
                        {q.json()["type"] for q in ok_reqs(prx)}, 20), [q.json()["type"] for q in prx.requests]
    assert erx.wait_for(lambda reqs: len(ok_reqs(erx)) >= 1, 20)
    preqs, ereqs = ok_reqs(prx), ok_reqs(erx)
    assert all(versions(q) == ["v1", "v1a"] for q in preqs + ereqs), [q.headers["webhook-signature"] for q in preqs]
    assert all(sw_verify(secret, preqs)), "the provider's notices verify with standardwebhooks"
    assert all(sw_verify(sub["secret"], ereqs)), "the subscriber's record.revoked verifies with standardwebhooks"
    assert all(prx.verify(q) for q in preqs) and all(erx.verify(q) for q in ereqs), "v1a verifies too"
    # and Python's hmac, written apart from both, agrees
    assert all(verify_v1(secret, q.headers, q.body, now=q.at) for q in preqs)
    assert all(verify_v1(sub["secret"], q.headers, q.body, now=q.at) for q in ereqs)
    assert ereqs[0].json()["type"] == "record.revoked"
    assert ereqs[0].json()["data"]["entry_index"] == first.entry_index
    # each endpoint's secret is its own
    assert not any(sw_verify(sub["secret"], preqs)) and not any(sw_verify(secret, ereqs))
    s.sub_a, s.provider_secret = sub, secret


def test_rotation_while_a_delivery_is_retried(sysm, rx):
    s, erx = sysm, rx["employer"]
    sub = make_subscription(s, erx, "/sub-b")
    old = sub["secret"]
    erx.clear()
    erx.set_status(500)                      # the employer is down: record.revoked is retried
    commit(s, "r-1")
    revoke(s, "r-1")
    assert erx.wait_for(lambda reqs: len([q for q in reqs if q.path == "/hook/sub-b"]) >= 2, 20)
    asked_at = time.time()                   # attempts that arrived before this were signed before it
    st, hdr, rot = request(s, "POST", f"/v1/subscriptions/{sub['id']}/secret")
    rotated_at = time.time()
    assert st == 200 and set(rot) == {"id", "secret", "previous_valid_until"} and rot["id"] == sub["id"], rot
    assert "no-store" in hdr.get("cache-control", "")
    new = rot["secret"]
    s.secrets_seen.append(new)
    assert SECRET_RE.match(new) and new != old
    until = datetime.datetime.strptime(rot["previous_valid_until"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert abs(until - (rotated_at + 86400)) < 60, rot      # WEBHOOK_SECRET_OVERLAP_S default: 24 h
    assert erx.wait_for(lambda reqs: len([q for q in reqs if q.path == "/hook/sub-b" and q.at > rotated_at + 1])
                        >= 2, 20)
    erx.set_status(200)
    assert erx.wait_for(lambda reqs: any(q.path == "/hook/sub-b" and q.answered == 200 for q in reqs), 20)
    reqs = [q for q in erx.requests if q.path == "/hook/sub-b"]
    assert len({q.webhook_id for q in reqs}) == 1, "one delivery, retried"
    before = [q for q in reqs if q.at < asked_at]
    during = [q for q in reqs if q.at > rotated_at + 1]
    assert before and during
    assert all(sw_verify(old, before)) and not any(sw_verify(new, before))
    assert all(sw_verify(old, during)) and all(sw_verify(new, during)), "the overlap: both secrets verify"
    assert all(versions(q) == ["v1", "v1", "v1a"] for q in during)
    assert all(erx.verify(q) for q in reqs)

    # the overlap ends (its end moved to now, as the clock would): only the new secret signs
    with s.redis() as r:
        r.cmd("HSET", f"cp:sub:{{{sub['id']}}}", "prev_until", str(int(time.time()) - 1))
    erx.clear()
    commit(s, "r-2")
    revoke(s, "r-2")
    assert erx.wait_for(lambda reqs: len(ok_reqs(erx, lambda q: q.path == "/hook/sub-b")) >= 1, 20)
    after = ok_reqs(erx, lambda q: q.path == "/hook/sub-b")
    assert all(sw_verify(new, after)) and not any(sw_verify(old, after))
    assert all(versions(q) == ["v1", "v1a"] for q in after)


def test_provider_rotation_with_the_cli(sysm, rx):
    s, prx = sysm, rx["provider"]
    old = s.provider_secret
    cp = s.run_cli(["webhook-secret", "PRV-0001", "--rotate"], check=True)
    new = cp.stdout.strip()
    s.secrets_seen.append(new)
    assert SECRET_RE.match(new) and new != old and "also signs until" in cp.stderr
    time.sleep(0.6)                           # notify looks at the store every 200 ms
    prx.clear()
    commit(s, "p-1")
    assert prx.wait_for(lambda reqs: len(ok_reqs(prx, lambda q: q.json()["type"] == "record.committed")) >= 1, 20)
    got = ok_reqs(prx)
    assert all(sw_verify(old, got)) and all(sw_verify(new, got)), "during the overlap both verify"
    # rotating again with no overlap: the one before stops at once, the oldest is gone
    cp = s.run_cli(["webhook-secret", "PRV-0001", "--rotate"], check=True,
                   env={"CAREPASS_WEBHOOK_SECRET_OVERLAP_S": "0"})
    newest = cp.stdout.strip()
    s.secrets_seen.append(newest)
    time.sleep(0.6)
    prx.clear()
    commit(s, "p-2")
    assert prx.wait_for(lambda reqs: len(ok_reqs(prx, lambda q: q.json()["type"] == "record.committed")) >= 1, 20)
    got = ok_reqs(prx)
    assert all(sw_verify(newest, got)) and not any(sw_verify(new, got)) and not any(sw_verify(old, got))


def test_bad_input(sysm, rx):
    s = sysm
    for path in ("/v1/subscriptions/sub_" + "0" * 32 + "/secret", "/v1/subscriptions/not-an-id/secret",
                 "/v1/subscriptions/sub_%2e%2e/secret"):
        st, _, b = request(s, "POST", path)
        assert st == 404 and b["error"]["code"] == "NOT_FOUND" and len(b["error"]["message"]) > 20, (path, b)
    st, _, b = request(s, "POST", f"/v1/subscriptions/{s.sub_a['id']}/other")
    assert st == 404 and b["error"]["code"] == "ROUTE_NOT_FOUND", b
    # a subscription that has ended (its share code expired) cannot be rotated
    with s.redis() as r:
        r.cmd("HSET", f"cp:sub:{{{s.sub_a['id']}}}", "expires_at", str(int(time.time()) - 5))
    st, _, b = request(s, "POST", f"/v1/subscriptions/{s.sub_a['id']}/secret")
    assert st == 404 and b["error"]["code"] == "NOT_FOUND", b
    # the CLI refuses a provider the registry does not know, and makes nothing
    before = (s.keys_dir / "webhook-secrets").read_text()
    cp = s.run_cli(["webhook-secret", "PRV-9999"])
    assert cp.returncode == 1 and cp.stdout == "" and "not in the registry" in cp.stderr, cp
    cp = s.run_cli(["webhook-secret", "PRV-0001", "--bogus"])
    assert cp.returncode == 2 and cp.stdout == ""
    assert (s.keys_dir / "webhook-secrets").read_text() == before
    assert "PRV-9999" not in before
    # --help says what the command does
    h = s.run_cli(["webhook-secret", "--help"], check=True).stdout
    assert "--rotate" in h and "CAREPASS_WEBHOOK_SECRET_OVERLAP_S" in h and "standard webhooks" in h.lower()


def test_no_secret_in_any_log(sysm):
    s = sysm
    assert len(s.secrets_seen) >= 5
    for svc in SERVICES + ("redis",):
        text = s.log_text(svc)
        for secret in s.secrets_seen:
            assert secret not in text and secret[len("whsec_"):] not in text, (svc, "a secret is in the log")
