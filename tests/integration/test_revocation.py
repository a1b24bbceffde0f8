"""test_revocation.py -- provider and operator revocations: register entries, derived Redis state,
idempotency, refusals, and "was it valid on date X" before and after the revocation."""

import datetime
import subprocess

from harness import event
from register_check import ENTRY_TYPE_KEY, Register
from subject_check import worker_of

OPERATOR = "carepass-operator"
REVOCATION = 2


def day(offset):
    """A date `offset` days from today (UTC), YYYY-MM-DD."""
    return (datetime.datetime.now(datetime.timezone.utc).date()
            + datetime.timedelta(days=offset)).isoformat()


def status_on(pe, rev, date):
    """The validity rule, written independently of common/register_status.c:
    valid on X iff completion_date <= X, (no valid_until or X <= valid_until), and not
    revoked by a revocation whose issued_at (UTC day) is <= X."""
    if rev is not None:
        rday = datetime.datetime.fromtimestamp(rev.issued_at, datetime.timezone.utc).date().isoformat()
        if rday <= date:
            return "revoked"
    if date < pe.completion_date:
        return "not yet valid"
    if pe.valid_until and date > pe.valid_until:
        return "expired"
    return "valid"


def commit(system, evs, provider="PRV-0001"):
    rep = system.submit(evs, provider=provider)
    for r in rep.replies:
        assert r.outcome == system.pb.OUTCOME_COMMITTED, (r.provider_event_id, r.reason_code, r.message)
    return {r.provider_event_id: r.entry_index for r in rep.replies}


def revocation_of(reg, pb, index):
    """The REVOCATION entry naming index, or None."""
    for i in range(reg.size):
        pe = reg.passport_entry(i, pb)
        if pe.entry_type == REVOCATION and pe.revokes_index == index:
            return i, pe
    return None


def test_operator_revocation_by_index(system):
    pb = system.register_pb
    ni = "AB123456C"
    idx = commit(system, [event("op-1", ni_number=ni, completion_date=day(-30)),
                          event("op-2", ni_number=ni, completion_date=day(-30))])
    target = idx["op-1"]

    r = system.run_cli(["revoke", str(target), "--reason", "ISSUED_IN_ERROR"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"entry {target} revoked by entry " in r.stdout, r.stdout
    rev_index = int(r.stdout.split(f"entry {target} revoked by entry ")[1].split()[0])

    reg = Register(system.register_dir)
    assert reg.verify_checkpoint() and reg.root() == reg.checkpoint_root
    rec, rev = reg.passport_entry(target, pb), reg.passport_entry(rev_index, pb)
    assert rev.entry_type == REVOCATION and rev.revokes_index == target
    assert rev.reason_code == "ISSUED_IN_ERROR"
    assert (rev.provider_id, rev.provider_event_id) == (OPERATOR, f"op-revoke-{target}")
    assert worker_of(system, rev) == worker_of(system, rec)
    assert reg.verify_entry_history(rev_index, pb)

    # derived state: the revoked record's event hash and the worker's index
    with system.redis() as red:
        ev = red.hgetall("cp:ev:{PRV-0001:op-1}")
        assert ev["revoked_index"] == str(rev_index).encode(), ev
        assert ev["revoked_at"] == str(rev.issued_at).encode(), ev
        assert ev["revoked_by"] == f"op-revoke-{target}".encode()
        assert "revoked_index" not in red.hgetall("cp:ev:{PRV-0001:op-2}")
        w = [int(x) for x in red.lrange(f"cp:w:{{{worker_of(system, rec).hex()}}}:entries")]
        assert rev_index in w and target in w

    # was it valid on date X: before the revocation yes, from its day on no
    revday = datetime.datetime.fromtimestamp(rev.issued_at, datetime.timezone.utc).date()
    before = (revday - datetime.timedelta(days=1)).isoformat()
    after = (revday + datetime.timedelta(days=1)).isoformat()
    assert status_on(rec, rev, before) == "valid"
    assert status_on(rec, rev, revday.isoformat()) == "revoked"
    assert status_on(rec, rev, after) == "revoked"
    assert status_on(rec, None, day(-31)) == "not yet valid"
    other = reg.passport_entry(idx["op-2"], pb)
    assert status_on(other, None, after) == "valid"

    # revoking twice: idempotent, with a clear message, nothing appended
    size = reg.size
    again = system.run_cli(["revoke", str(target), "--reason", "FRAUD"])
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"entry {target} is already revoked by entry {rev_index}" in again.stdout, again.stdout
    assert Register(system.register_dir).size == size

    # refusals: not a record, not in the register, bad reason, bad usage
    key = system.run_cli(["revoke", "0", "--reason", "OTHER"])
    assert key.returncode == 1 and "key entry, not a record" in key.stderr, key.stderr
    assert reg.passport_entry(0, pb).entry_type == ENTRY_TYPE_KEY
    rr = system.run_cli(["revoke", str(rev_index), "--reason", "OTHER"])
    assert rr.returncode == 1 and "revocation entry, not a record" in rr.stderr, rr.stderr
    far = system.run_cli(["revoke", "999999", "--reason", "OTHER"])
    assert far.returncode == 1 and "not in the register" in far.stderr, far.stderr
    bad = system.run_cli(["revoke", str(idx["op-2"]), "--reason", "BECAUSE"])
    assert bad.returncode == 2 and "--reason must be one of" in bad.stderr
    both = system.run_cli(["revoke", "1", "--provider", "PRV-0001", "--from", day(-1), "--reason", "FRAUD"])
    assert both.returncode == 2
    assert Register(system.register_dir).size == size


def test_operator_revocation_by_provider_and_date(system):
    pb = system.register_pb
    old = commit(system, [event("dq-old", ni_number="CE654321A", completion_date=day(-100))],
                 provider="PRV-0002")
    new = commit(system, [event("dq-a", ni_number="CE654321A", completion_date=day(-20)),
                          event("dq-b", ni_number="JG103759A", completion_date=day(-10)),
                          event("dq-c", ni_number="AB123456C", completion_date=day(-5))],
                 provider="PRV-0002")
    keep = commit(system, [event("other-1", ni_number="CE654321A", completion_date=day(-10))])
    # the provider revokes one of them itself first
    prev = system.submit([event("dq-c-rev", ni_number="AB123456C", completion_date=day(-5),
                                kind="revocation", revokes_event_id="dq-c",
                                revocation_reason="ISSUED_IN_ERROR")], provider="PRV-0002").replies[0]
    assert prev.outcome == system.pb.OUTCOME_COMMITTED, (prev.reason_code, prev.message)

    dry = system.run_cli(["revoke", "--provider", "PRV-0002", "--from", day(-30),
                          "--reason", "PROVIDER_DEACCREDITED", "--dry-run"])
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"would revoke entry {new['dq-a']} " in dry.stdout
    assert f"would revoke entry {new['dq-b']} " in dry.stdout
    size = Register(system.register_dir).size

    r = system.run_cli(["revoke", "--provider", "PRV-0002", "--from", day(-30),
                        "--reason", "PROVIDER_DEACCREDITED"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"entry {new['dq-c']} is already revoked by entry {prev.entry_index}" in r.stdout, r.stdout
    reg = Register(system.register_dir)
    assert reg.size == size + 2
    for eid in ("dq-a", "dq-b"):
        found = revocation_of(reg, pb, new[eid])
        assert found is not None, eid
        ri, rev = found
        assert f"entry {new[eid]} revoked by entry {ri}" in r.stdout
        assert rev.reason_code == "PROVIDER_DEACCREDITED" and rev.provider_id == OPERATOR
    # records before the date and other providers' records are untouched
    assert revocation_of(reg, pb, old["dq-old"]) is None
    assert revocation_of(reg, pb, keep["other-1"]) is None
    # the provider's own revocation also updated the derived state
    with system.redis() as red:
        assert red.hget("cp:ev:{PRV-0002:dq-c}", "revoked_index") == str(prev.entry_index).encode()
        assert red.hget("cp:ev:{PRV-0002:dq-a}", "revoked_index") is not None
        assert red.hget("cp:ev:{PRV-0002:dq-old}", "revoked_index") is None

    # a second run finds nothing left to do
    again = system.run_cli(["revoke", "--provider", "PRV-0002", "--from", day(-30),
                            "--reason", "PROVIDER_DEACCREDITED"])
    assert again.returncode == 0
    assert "already revoked" in again.stdout
    assert Register(system.register_dir).size == reg.size

    # a provider revoking an already revoked record is refused by verify
    twice = system.submit([event("dq-a-rev", ni_number="CE654321A", completion_date=day(-20),
                                 kind="revocation", revokes_event_id="dq-a",
                                 revocation_reason="ISSUED_IN_ERROR")], provider="PRV-0002").replies[0]
    assert twice.outcome != system.pb.OUTCOME_COMMITTED
    assert Register(system.register_dir).size == reg.size


def test_validity_on_dates_offline(system, tmp_path):
    """carepass verify of a passport bundle judges a revoked record by date (CAREPASS_TODAY)."""
    ni = "AB123456C"
    idx = commit(system, [event("vd-1", ni_number=ni, completion_date=day(-40))])
    r = system.run_cli(["revoke", str(idx["vd-1"]), "--reason", "FRAUD"])
    assert r.returncode == 0, r.stdout + r.stderr
    bundle = tmp_path / "passport.json"
    pp = system.run_cli(["passport", ni, "--out", bundle])
    assert bundle.exists(), pp.stdout + pp.stderr
    vkey = system.register_dir / "vkey"
    reg = Register(system.register_dir)
    rev = revocation_of(reg, system.register_pb, idx["vd-1"])[1]
    revday = datetime.datetime.fromtimestamp(rev.issued_at, datetime.timezone.utc).date()
    before = (revday - datetime.timedelta(days=1)).isoformat()
    after = (revday + datetime.timedelta(days=1)).isoformat()
    early = system.run_cli(["verify", bundle, "--vkey", vkey], env={"CAREPASS_TODAY": before})
    late = system.run_cli(["verify", bundle, "--vkey", vkey], env={"CAREPASS_TODAY": after})
    at_late = system.run_cli(["verify", bundle, "--vkey", vkey, "--at", after])
    rec = f"record {idx['vd-1']} "
    assert f"was valid on {before}" in status_lines(early.stdout, rec), early.stdout
    assert early.returncode == 0, early.stdout + early.stderr
    for out in (late, at_late):
        assert f"was valid on {after}" not in status_lines(out.stdout, rec), out.stdout
        assert "revoked" in status_lines(out.stdout, rec), out.stdout


def status_lines(text, prefix):
    """The lines of a verification statement that start with `prefix`, lower-cased."""
    return "\n".join(l for l in text.lower().splitlines() if l.startswith(prefix))


if __name__ == "__main__":  # pragma: no cover
    subprocess.call(["/usr/bin/python3", "-m", "pytest", "-q", __file__])
