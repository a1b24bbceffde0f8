"""test_roles_offline.py -- readiness for a Care Workforce Pathway role, offline: `carepass verify
FILE --role R --at DATE` on a passport bundle, with no network and no Redis (issue 12, item 1).
The rule itself is unit-tested in tests/unit/test_roles.c; this checks the command end to end."""

import pytest

from harness import event

NI = "AB123456C"


def verify(system, f, *extra):
    return system.run_cli(["verify", f, "--vkey", system.register_dir / "vkey", *extra])


@pytest.mark.carepass()
def test_verify_says_whether_the_worker_is_ready(system, tmp_path):
    evs = [event("r-l2", ni_number=NI, qualification_code="L2-ASCC", completion_date="2026-01-10", assessor_id="ASR-1",
                 provider_id="PRV-0004"),
           event("r-mh", ni_number=NI, qualification_code="RF-MH", completion_date="2026-02-01", assessor_id="ASR-1"),
           event("r-bls", ni_number=NI, qualification_code="RF-BLS", completion_date="2026-03-01", assessor_id="ASR-1"),
           event("r-fire", ni_number=NI, qualification_code="RF-FIRE", completion_date="2026-04-01"),
           event("r-safeg", ni_number=NI, qualification_code="RF-SAFEG", completion_date="2026-05-01")]
    rep = system.submit(evs[:1], provider="PRV-0004")
    assert rep.replies[0].outcome == system.pb.OUTCOME_COMMITTED, rep
    rep = system.submit(evs[1:])
    assert all(r.outcome == system.pb.OUTCOME_COMMITTED for r in rep.replies), rep
    f = tmp_path / "p.carepass"
    system.run_cli(["passport", NI, "--out", f], check=True)

    # ready until the first refresher lapses (moving and handling, completed 2026-02-01, annual)
    out = verify(system, f, "--role", "care-worker", "--at", "2026-06-01")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Readiness for Care or support worker (care-worker) on 2026-06-01: READY UNTIL 2027-02-01" in out.stdout
    assert "Level 2 Adult Social Care Certificate" in out.stdout and "Basis:" in out.stdout
    # within 90 days of that: still ready, the refresher marked
    out = verify(system, f, "--role", "care-worker", "--at", "2026-12-01")
    assert out.returncode == 0 and "expires within 90 days" in out.stdout, out.stdout
    # after it: not ready, saying which one expired (the expired record also fails its validity
    # check on that date, so the exit status is 1, not 3)
    out = verify(system, f, "--role", "care-worker", "--at", "2027-02-15")
    assert out.returncode == 1, out.stdout
    assert "NOT READY" in out.stdout and "expired  moving and handling" in out.stdout
    # a role the records do not cover: medicines
    out = verify(system, f, "--role", "care-worker-medicines", "--at", "2026-06-01")
    assert out.returncode == 3 and "missing  medication" in out.stdout, out.stdout
    # a registered manager needs the Level 5 diploma
    out = verify(system, f, "--role", "registered-manager", "--at", "2026-06-01")
    assert out.returncode == 3 and "missing  Level 5 Diploma" in out.stdout
    # the operator's view says the same from the register (today set to 2026-06-01)
    day = {"CAREPASS_TODAY": "2026-06-01"}
    out = system.run_cli(["passport", NI, "--role", "care-worker"], env=day)
    assert out.returncode == 0 and "Readiness for Care or support worker (care-worker) on 2026-06-01: " \
        "READY UNTIL 2027-02-01" in out.stdout, out.stdout
    out = system.run_cli(["passport", NI, "--role", "registered-manager"], env=day)
    assert out.returncode == 3 and "missing  Level 5 Diploma" in out.stdout
    # an unknown role, and --started without --role, are usage errors
    out = verify(system, f, "--role", "astronaut")
    assert out.returncode == 2 and "care-worker" in out.stderr
    assert verify(system, f, "--started", "2026-01-01").returncode == 2


@pytest.mark.carepass()
def test_a_new_starter_within_the_grace_period(system, tmp_path):
    rep = system.submit([event("g-fire", ni_number=NI, qualification_code="RF-FIRE", completion_date="2026-04-01"),
                         event("g-safeg", ni_number=NI, qualification_code="RF-SAFEG", completion_date="2026-04-02")])
    assert all(r.outcome == system.pb.OUTCOME_COMMITTED for r in rep.replies), rep
    f = tmp_path / "g.carepass"
    system.run_cli(["passport", NI, "--out", f], check=True)
    # no induction certificate yet: not ready, unless a new starter within the 12 weeks
    out = verify(system, f, "--role", "new-to-care", "--at", "2026-05-01")
    assert out.returncode == 3 and "missing  induction" in out.stdout, out.stdout
    out = verify(system, f, "--role", "new-to-care", "--at", "2026-05-01", "--started", "2026-04-20")
    assert out.returncode == 0, out.stdout
    assert "READY UNTIL 2026-07-13" in out.stdout and "pending  induction" in out.stdout
    out = verify(system, f, "--role", "new-to-care", "--at", "2026-07-14", "--started", "2026-04-20")
    assert out.returncode == 3 and "missing  induction" in out.stdout


def _http(system, path, body, token=None):
    import http.client
    import json
    c = http.client.HTTPConnection("127.0.0.1", system.gateway_port, timeout=30)
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    c.request("POST", path, json.dumps(body).encode(), h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


@pytest.mark.carepass(services=("bus", "intake", "verify", "signer", "notify", "gateway"),
                      extra_env={"CAREPASS_TODAY": "2026-06-01"})
def test_check_answers_readiness_first(system):
    import json
    rep = system.submit([event("c-l2", ni_number=NI, qualification_code="L2-ASCC", completion_date="2026-01-10",
                               assessor_id="ASR-1", provider_id="PRV-0004")], provider="PRV-0004")
    assert rep.replies[0].outcome == system.pb.OUTCOME_COMMITTED, rep
    rep = system.submit([event("c-mh", ni_number=NI, qualification_code="RF-MH", completion_date="2026-02-01", assessor_id="ASR-1"),
                         event("c-bls", ni_number=NI, qualification_code="RF-BLS", completion_date="2026-03-01", assessor_id="ASR-1"),
                         event("c-fire", ni_number=NI, qualification_code="RF-FIRE", completion_date="2026-04-01"),
                         event("c-safeg", ni_number=NI, qualification_code="RF-SAFEG", completion_date="2026-05-01")])
    assert all(r.outcome == system.pb.OUTCOME_COMMITTED for r in rep.replies), rep
    idx = {r.provider_event_id: r.entry_index for r in rep.replies}
    tok = system.run_cli(["worker-token", NI, "--days", "2"], check=True).stdout.strip()
    st, b = _http(system, "/v1/share-codes", {"date_of_birth": "1990-04-12"}, tok)
    assert st == 201, b
    code = json.loads(b)["code"]
    st, b = _http(system, "/v1/check", {"share_code": code, "date_of_birth": "1990-04-12", "role": "care-worker"})
    assert st == 200, b
    keys = list(json.loads(b))
    assert keys[:2] == ["checked_on", "readiness"]   # the employer's question, answered first
    r = json.loads(b)["readiness"]
    assert r["role"] == "care-worker" and r["verdict"] == "ready_until" and r["until"] == "2027-02-01"
    assert [q["state"] for q in r["requirements"]] == ["met"] * 5 and r["basis"]
    assert r["requirements"][1]["index"] == idx["c-mh"] and r["requirements"][1]["valid_until"] == "2027-02-01"
    # a code scoped to two records: readiness from what was shared only
    st, b = _http(system, "/v1/share-codes", {"date_of_birth": "1990-04-12", "entries": [idx["c-fire"], idx["c-safeg"]]}, tok)
    code2 = json.loads(b)["code"]
    st, b = _http(system, "/v1/check", {"share_code": code2, "date_of_birth": "1990-04-12", "role": "new-to-care",
                                        "started": "2026-05-15"})
    r = json.loads(b)["readiness"]
    assert r["verdict"] == "ready_until" and r["until"] == "2026-08-07", r   # induction pending 84 days
    assert [q["state"] for q in r["requirements"]] == ["pending", "met", "met"]
    st, b = _http(system, "/v1/check", {"share_code": code2, "date_of_birth": "1990-04-12", "role": "care-worker"})
    r = json.loads(b)["readiness"]
    assert r["verdict"] == "not_ready" and [q["state"] for q in r["requirements"]][:3] == ["missing"] * 3
    # without a role the answer is as before; an unknown role is a 400 naming the roles
    st, b = _http(system, "/v1/check", {"share_code": code, "date_of_birth": "1990-04-12"})
    assert st == 200 and "readiness" not in json.loads(b)
    st, b = _http(system, "/v1/check", {"share_code": code, "date_of_birth": "1990-04-12", "role": "astronaut"})
    assert st == 400 and b"registered-manager" in b
