"""test_webhook_ssrf.py -- carepass sends webhooks only where it should (common/url_check.c).

- An employer's subscription to a loopback, private, link-local (cloud metadata) or otherwise
  internal address, in any disguise, is refused with 400 URL_REFUSED and a sentence;
- a provider registry whose webhook_url points at one refuses to load, naming the field;
- a host *name* that resolves to an internal address (here: this machine's own host name) passes
  the form check, and notify refuses to connect to it at connect time, says so in its log and
  delivers nothing; allowed by name on CAREPASS_WEBHOOK_ALLOW_HOSTS, the same delivery arrives.
"""

import http.client
import ipaddress
import json
import os
import socket
import subprocess

import pytest

from harness import CarepassSystem, event, find_binary

NO_ALLOW = {"CAREPASS_WEBHOOK_ALLOW_HOSTS": ""}

REFUSED = [
    "http://127.0.0.1:9/hook",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://localhost:8080/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/",
    "http://192.168.1.10/",
    "http://[fd00::1]/",
    "http://user:secret@hooks.example.org/",
    "file:///etc/passwd",
    "https://hooks.example.org/#x",
]


def post(s, path, body):
    c = http.client.HTTPConnection("127.0.0.1", s.gateway_port, timeout=30)
    try:
        c.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        c.close()


def test_subscription_to_an_internal_address_is_refused(tmp_path):
    with CarepassSystem(tmp_path, services=("bus", "gateway"), extra_env=NO_ALLOW) as s:
        for url in REFUSED:
            st, b = post(s, "/v1/subscriptions", {"share_code": "ABC-DEF-GHJ", "date_of_birth": "1990-01-01",
                                                  "url": url, "employer": "Sunrise Care"})
            assert st == 400 and b["error"]["code"] == "URL_REFUSED", (url, st, b)
            assert len(b["error"]["message"]) > 20 and "secret" not in b["error"]["message"], b
        # a public URL passes the URL check (and then fails on the unknown share code)
        st, b = post(s, "/v1/subscriptions", {"share_code": "ABC-DEF-GHJ", "date_of_birth": "1990-01-01",
                                              "url": "https://hooks.example.org/carepass", "employer": "x"})
        assert b.get("error", {}).get("code") != "URL_REFUSED", b


def test_registry_webhook_url_to_metadata_address_refuses_to_load(tmp_path):
    s = CarepassSystem(tmp_path, services=("bus",), extra_env=NO_ALLOW,
                       providers={"PRV-0001": {"webhook_url": "http://169.254.169.254/latest/meta-data/"}})
    try:
        for svc in ("notify", "gateway"):
            env = dict(s.env)
            p = subprocess.run([str(find_binary(svc, s.build_dir))], env=env, cwd=str(s.dir),
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            out = (p.stdout + p.stderr).decode(errors="replace")
            assert p.returncode != 0, (svc, out)
            assert "webhook_url" in out and "link-local" in out and "PRV-0001" in out, (svc, out)
    finally:
        s.stop()


def own_name_internal_address():
    """This machine's host name and the internal address it resolves to, or None."""
    name = socket.gethostname().lower()
    if not name or name == "localhost" or name.endswith(".localhost"):
        return None
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror:
        return None
    for info in infos:
        addr = info[4][0]
        a = ipaddress.ip_address(addr)
        if a.is_loopback or a.is_private or a.is_link_local:
            return name, addr
    return None


def test_name_resolving_to_an_internal_address_is_not_connected_to(tmp_path, receivers):
    found = own_name_internal_address()
    if found is None:
        pytest.skip("this machine's host name does not resolve to an internal IPv4 address")
    name, addr = found
    rx = receivers(host=addr)
    url = f"http://{name}:{rx.port}/hook"
    env = dict(NO_ALLOW, CAREPASS_WEBHOOK_BACKOFF_MS="100", CAREPASS_WEBHOOK_BACKOFF_MAX_MS="300")
    with CarepassSystem(tmp_path, extra_env=env, providers={"PRV-0001": {"webhook_url": url}}) as s:
        reply = s.submit([event("ssrf-1", completion_date="2025-05-01")]).replies[0]
        assert reply.outcome == s.pb.OUTCOME_COMMITTED, (reply.reason_code, reply.message)
        s.wait_for(lambda: "refused to connect to a" in s.log_text("notify"), timeout=20,
                   what="notify refusing the internal address")
        assert rx.requests == [], [q.path for q in rx.requests]
        # the operator allows the name: the retried deliveries arrive
        s.restart("notify", extra_env={"CAREPASS_WEBHOOK_ALLOW_HOSTS": name})
        assert rx.wait_for(lambda reqs: any(q.json()["type"] == "record.committed" for q in reqs), 30), \
            s.log_tail("notify")
