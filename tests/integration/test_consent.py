"""test_consent.py -- ongoing access as a durable consent on the register (issue 12 item 4): a worker
grants an employer ongoing access through the gateway; it becomes a format-2 consent entry whose
public bytes name neither the employer nor the worker; the employer id opens (python3-nacl, from
the subject key store's files) only with the worker's key; the projection's staff index holds it;
withdrawing revokes it and empties the index; reindex rebuilds the same state; another worker cannot
withdraw it; a training provider cannot send a consent; leaving ends it."""

import hashlib
import json
import signal
import time

import nacl.bindings
import pytest

from harness import event
from register_check import Register
from subject_check import open_sealed, store_keys

NI_A, NI_B = "AB123456C", "JG103759A"
EMP = "EMP-0001"
CONSENT, REVOCATION = 5, 2
PAYLOAD_DOMAIN = b"carepass/payload/v1\n"


def http_request(system, method, path, body=None, token=None):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", system.gateway_port, timeout=30)
    try:
        h = {"Content-Type": "application/json"}
        if token:
            h["Authorization"] = f"Bearer {token}"
        c.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def pseudonym(system, ni):
    secret = bytes.fromhex((system.keys_dir / "pseudonym.secret").read_text().strip())
    return hashlib.blake2b(b"carepass/worker/v1\n" + ni.encode(), digest_size=32, key=secret).digest()


def token(system, ni):
    return system.run_cli(["worker-token", ni, "--days", "2"], check=True).stdout.strip()


def entries(system):
    reg = Register(system.register_dir)
    assert reg.verify_checkpoint() and reg.root() == reg.checkpoint_root
    return [(i, reg.passport_entry(i, system.register_pb)) for i in range(reg.size)]


def wait_state(system, tok, cid, want, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        st, b = http_request(system, "GET", "/v1/consents", token=tok)
        assert st == 200, b
        cs = {c["id"]: c for c in json.loads(b)["consents"]}
        if (want is None and cid not in cs) or (want is not None and cs.get(cid, {}).get("state") == want):
            return cs.get(cid)
        time.sleep(0.2)
    raise AssertionError(f"consent {cid} never reached {want}")


def consent_keys(system):
    def s_(x):
        return x.decode() if isinstance(x, bytes) else x
    with system.redis() as r:
        keys = sorted(s_(k) for k in r.keys("cp:cn:*") + r.keys("cp:emp:*") + r.keys("cp:w:*:consents"))
        out = {}
        for k in keys:
            if k.startswith("cp:cn:"):
                out[k] = {s_(a): s_(v) for a, v in r.hgetall(k).items()}
            else:
                out[k] = sorted(s_(x) for x in r.cmd("SMEMBERS", k))
        return out


@pytest.mark.carepass(extra_env={"CAREPASS_ENTRY_FORMAT": "2"},
                       services=("bus", "intake", "verify", "signer", "notify", "gateway"))
def test_consent_grant_withdraw_reindex_leave(system):
    pa = pseudonym(system, NI_A)
    ta, tb = token(system, NI_A), token(system, NI_B)

    # bad input: a clear error, never a consent
    st, b = http_request(system, "POST", "/v1/consents", {"employer": "ACME"}, ta)
    assert st == 400 and json.loads(b)["error"]["code"] == "INVALID_FIELD", b
    # only a registered employer (data/employers.json) can be given ongoing access
    st, b = http_request(system, "POST", "/v1/consents", {"employer": "EMP-9999"}, ta)
    assert st == 400 and json.loads(b)["error"]["code"] == "EMPLOYER_NOT_REGISTERED", b

    st, b = http_request(system, "POST", "/v1/consents", {"employer": EMP}, ta)
    assert st == 202, b
    j = json.loads(b)
    cid = j["id"]
    assert j["employer"] == EMP and j["state"] == "pending" and cid.startswith("cn_")
    st, b = http_request(system, "POST", "/v1/consents", {"employer": EMP}, ta)
    assert st == 409 and json.loads(b)["error"]["code"] == "CONSENT_EXISTS", b
    c = wait_state(system, ta, cid, "active")
    assert c["employer"] == EMP and "since" in c

    # the committed entry: public bytes hold neither employer nor pseudonym; the store opens both
    ents = [(i, pe) for i, pe in entries(system) if pe.entry_type == CONSENT]
    assert len(ents) == 1
    index, pe = ents[0]
    assert pe.version == 2 and pe.worker_pseudonym == b"" and pe.qualification_code == ""
    assert pe.provider_id == "carepass-consent" and pe.provider_event_id == "consent:" + cid[3:]
    raw = pe.SerializeToString()
    assert EMP.encode() not in raw and pa not in raw and pa.hex().encode() not in raw
    slots = store_keys(system)
    p, _ = open_sealed(pe, slots)
    assert p == pa
    key = slots[pe.subject_slot]
    nonce, ct = pe.sealed_payload[:24], pe.sealed_payload[24:]
    emp = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
        ct, PAYLOAD_DOMAIN + pe.subject + pe.subject_slot, nonce, key)
    assert emp == EMP.encode()
    with pytest.raises(Exception):   # the payload is bound to its entry: another AD does not open it
        nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ct, PAYLOAD_DOMAIN + bytes(32) + pe.subject_slot, nonce, key)

    # the projection's index; not one of the worker's records
    with system.redis() as r:
        assert r.cmd("SMEMBERS", "cp:emp:{%s}:staff" % EMP) == [cid[3:].encode()]
        h = {a: v.decode() for a, v in r.hgetall("cp:cn:{%s}" % cid[3:]).items()}
        assert h["employer"] == EMP and h["worker"] == pa.hex() and h["index"] == str(index)
        assert str(index).encode() not in r.lrange("cp:w:{%s}:entries" % pa.hex())
        assert r.cmd("EXISTS", "cp:exp:{%d}" % index) == 0
    live = consent_keys(system)

    # reindex from the register and the store rebuilds the same consent state
    with system.redis() as r:
        r.cmd("FLUSHALL")
    system.run_cli(["reindex"], check=True)
    assert consent_keys(system) == live

    # a training provider cannot send a consent (shape: unknown kind) nor a consent withdrawal
    rep = system.submit([event("x-1", ni_number=NI_A, kind=3)], ack="committed")
    assert rep.replies[0].outcome == system.pb.OUTCOME_REJECTED and rep.replies[0].reason_code == "INVALID_KIND"
    rep = system.submit([event("x-2", ni_number=NI_A, kind="revocation", revokes_event_id=pe.provider_event_id,
                               revocation_reason="CONSENT_WITHDRAWN")])
    assert rep.replies[0].outcome == system.pb.OUTCOME_REJECTED, rep

    # another worker cannot withdraw it: the same 404 as an unknown id
    st, b = http_request(system, "DELETE", f"/v1/consents/{cid}", token=tb)
    assert st == 404 and json.loads(b)["error"]["code"] == "NOT_FOUND", b
    st, b2 = http_request(system, "DELETE", "/v1/consents/cn_" + "0" * 32, token=tb)
    assert st == 404 and json.loads(b2) == json.loads(b)

    # withdrawal: a revocation of the consent entry, gone from the index
    st, b = http_request(system, "DELETE", f"/v1/consents/{cid}", token=ta)
    assert st == 202 and json.loads(b)["state"] == "withdrawn-pending", b
    wait_state(system, ta, cid, None)
    revs = [pe2 for i, pe2 in entries(system) if pe2.entry_type == REVOCATION and pe2.revokes_index == index]
    assert len(revs) == 1 and revs[0].reason_code == "CONSENT_WITHDRAWN"
    assert EMP.encode() not in revs[0].SerializeToString()
    assert consent_keys(system) == {}
    gone = consent_keys(system)
    with system.redis() as r:
        r.cmd("FLUSHALL")
    system.run_cli(["reindex"], check=True)
    assert consent_keys(system) == gone

    # a new consent, then the worker leaves: it ends, and reindex does not bring it back
    st, b = http_request(system, "POST", "/v1/consents", {"employer": "EMP-0002"}, ta)
    assert st == 202, b
    cid2 = json.loads(b)["id"]
    wait_state(system, ta, cid2, "active")
    assert consent_keys(system) != {}
    system.kill("signer", signal.SIGTERM)
    system.wait_exit("signer")
    system.run_cli(["leave", NI_A], check=True)
    assert consent_keys(system) == {}
    system.start_service("signer")
    system.wait_healthy("signer")
    audit = system.run_cli(["audit", str(system.register_dir), "--vkey", str(system.register_dir / "vkey")])
    assert audit.returncode == 0, audit.stdout + audit.stderr
    with system.redis() as r:
        r.cmd("FLUSHALL")
    system.run_cli(["reindex"], check=True)
    assert consent_keys(system) == {}


@pytest.mark.carepass(extra_env={"CAREPASS_ENTRY_FORMAT": "2"},
                      services=("bus", "intake", "verify", "signer", "notify", "gateway"))
def test_share_code_with_ongoing_access(system):
    tb = token(system, NI_B)
    st, b = http_request(system, "POST", "/v1/share-codes",
                         {"date_of_birth": "1990-11-02", "ongoing_access": "EMP-0003"}, tb)
    assert st == 201, b
    oa = json.loads(b)["ongoing_access"]
    assert oa["employer"] == "EMP-0003" and oa["state"] == "pending" and oa["id"].startswith("cn_")
    wait_state(system, tb, oa["id"], "active")
    with system.redis() as r:
        assert r.cmd("SMEMBERS", "cp:emp:{EMP-0003}:staff") == [oa["id"][3:].encode()]
    # the same employer again: refused, and no code is made
    with system.redis() as r:
        codes = r.cmd("SCARD", "cp:w:{%s}:sc" % pseudonym(system, NI_B).hex())
    st, b = http_request(system, "POST", "/v1/share-codes",
                         {"date_of_birth": "1990-11-02", "ongoing_access": "EMP-0003"}, tb)
    assert st == 409 and json.loads(b)["error"]["code"] == "CONSENT_EXISTS", b
    st, b = http_request(system, "POST", "/v1/share-codes", {"date_of_birth": "1990-11-02", "ongoing_access": "x"}, tb)
    assert st == 400, b
    with system.redis() as r:
        assert r.cmd("SCARD", "cp:w:{%s}:sc" % pseudonym(system, NI_B).hex()) == codes


@pytest.mark.carepass(extra_env={"CAREPASS_ENTRY_FORMAT": "2"},
                      services=("bus", "intake", "verify", "signer", "notify", "gateway"))
def test_the_staff_view(system):
    """GET /v1/staff: the workers who gave the employer ongoing access, each by consent id (which
    the employer learns from its own token's check of the code made with it), with their records'
    counts, next expiry and readiness; nobody else's; gone once withdrawn."""
    from harness import event
    rep = system.submit([event("st-1", ni_number=NI_B, qualification_code="RF-FIRE", completion_date="2026-05-01"),
                         event("st-2", ni_number=NI_B, qualification_code="RF-SAFEG", completion_date="2026-05-02"),
                         event("st-3", ni_number=NI_B, qualification_code="RF-MH", completion_date="2026-05-03",
                               assessor_id="ASR-1")])
    assert all(r.outcome == system.pb.OUTCOME_COMMITTED for r in rep.replies), rep
    idx_mh = [r.entry_index for r in rep.replies if r.provider_event_id == "st-3"][0]
    tb = token(system, NI_B)
    st, b = http_request(system, "POST", "/v1/share-codes", {"date_of_birth": "1990-11-02", "ongoing_access": EMP}, tb)
    assert st == 201, b
    code, cid = json.loads(b)["code"], json.loads(b)["ongoing_access"]["id"]
    wait_state(system, tb, cid, "active")
    e1 = system.run_cli(["employer-token", EMP, "--days", "30"], check=True).stdout.strip()
    e2 = system.run_cli(["employer-token", "EMP-0002", "--days", "30"], check=True).stdout.strip()
    # the employer's own check of the code tells it which consent this person is; another's does not
    body = {"share_code": code, "date_of_birth": "1990-11-02"}
    st, b = http_request(system, "POST", "/v1/check", body, e1)
    assert st == 200 and json.loads(b)["ongoing_access"] == {"consent_id": cid}, b
    for t in (e2, None):
        st, b = http_request(system, "POST", "/v1/check", body, t)
        assert st == 200 and "ongoing_access" not in json.loads(b), b
    # the staff view
    st, b = http_request(system, "GET", "/v1/staff?role=care-worker", token=e1)
    assert st == 200, b
    staff = json.loads(b)["staff"]
    assert [x["consent_id"] for x in staff] == [cid]
    me = staff[0]
    assert (me["records"], me["valid"], me["expired"], me["revoked"]) == (3, 3, 0, 0), me
    assert me["next_expiry"]["code"] == "RF-FIRE" and me["readiness"]["verdict"] == "not_ready"
    assert "changes" not in me   # a first visit: nothing to compare with
    # a new record and a revocation after this visit show as changes at the next one
    time.sleep(1.1)
    rep = system.submit([event("st-4", ni_number=NI_B, qualification_code="RF-HS", completion_date="2026-05-04")])
    assert rep.replies[0].outcome == system.pb.OUTCOME_COMMITTED, rep
    rep = system.submit([event("st-1r", ni_number=NI_B, qualification_code="RF-FIRE", completion_date="2026-05-01",
                               kind="revocation", revokes_event_id="st-1", revocation_reason="ISSUED_IN_ERROR")])
    assert rep.replies[0].outcome == system.pb.OUTCOME_COMMITTED, rep
    st, b = http_request(system, "GET", "/v1/staff", token=e1)
    j = json.loads(b)
    assert "last_visit" in j and j["staff"][0]["changes"] == {"new": 1, "revoked": 1, "expired": 0}, j
    st, b = http_request(system, "GET", "/v1/staff?role=care-worker&not_ready=1", token=e1)
    assert [x["consent_id"] for x in json.loads(b)["staff"]] == [cid]
    st, b = http_request(system, "GET", "/v1/staff?expiring=1", token=e1)
    assert json.loads(b)["staff"] == []
    # nobody else's staff: another employer sees none, a worker or no token none at all
    st, b = http_request(system, "GET", "/v1/staff", token=e2)
    assert st == 200 and json.loads(b)["staff"] == []
    assert http_request(system, "GET", "/v1/staff", token=tb)[0] == 401
    assert http_request(system, "GET", "/v1/staff")[0] == 401
    for q in ("not_ready=1", "expiring=0", "role=astronaut"):
        st, b = http_request(system, "GET", f"/v1/staff?{q}", token=e1)
        assert st == 400 and json.loads(b)["error"]["code"] == "INVALID_QUERY", (q, b)
    # the staff's training as ASC-WDS's bulk-upload file, under the employer's own worker ids
    from test_asc_wds_export import check_file
    import datetime
    exp = {"workplace_id": "SUNRISE-01", "worker_ids": {cid: "STAFF-0042"}}
    st, b = http_request(system, "POST", "/v1/staff/asc-wds-training.csv", exp, e1)
    assert st == 200, b
    rows = check_file(b.decode(), datetime.date.today())
    # moving and handling and health and safety; RF-FIRE is revoked and RF-SAFEG has no checked category
    assert sorted((x["LOCALESTID"], x["UNIQUEWORKERID"], x["CATEGORY"]) for x in rows) == \
        [("SUNRISE-01", "STAFF-0042", "15"), ("SUNRISE-01", "STAFF-0042", "9")]
    assert any(f"entry {idx_mh}" in x["NOTES"] for x in rows)
    st, b = http_request(system, "POST", "/v1/staff/asc-wds-training.csv", exp, e2)   # not e2's staff
    assert st == 200 and check_file(b.decode(), datetime.date.today()) == []
    st, b = http_request(system, "POST", "/v1/staff/asc-wds-training.csv",
                         {"workplace_id": "A,B", "worker_ids": {}}, e1)
    assert st == 400 and json.loads(b)["error"]["code"] == "INVALID_FIELD"
    assert http_request(system, "POST", "/v1/staff/asc-wds-training.csv", exp)[0] == 401
    # withdrawn: gone at once from the staff view
    st, b = http_request(system, "DELETE", f"/v1/consents/{cid}", token=tb)
    assert st == 202, b
    system.wait_for(lambda: json.loads(http_request(system, "GET", "/v1/staff", token=e1)[1])["staff"] == [],
                    what="the withdrawn consent gone from the staff view")


@pytest.mark.carepass(extra_env={"CAREPASS_ENTRY_FORMAT": "1"},
                      services=("bus", "intake", "verify", "signer", "notify", "gateway"))
def test_format_1_refuses_consents(system):
    ta = token(system, NI_A)
    st, b = http_request(system, "POST", "/v1/consents", {"employer": EMP}, ta)
    assert st == 409 and json.loads(b)["error"]["code"] == "CONSENT_NEEDS_FORMAT_2", b
    st, b = http_request(system, "GET", "/v1/consents", token=ta)
    assert st == 200 and json.loads(b) == {"consents": []}
    assert not [pe for _, pe in entries(system) if pe.entry_type == CONSENT]
