"""test_e2e_smoke.py -- one good event for a fresh worker through the whole system:
committed with an index, shown by `carepass passport` (signature and inclusion ok)
and by `carepass status`."""

import datetime
import hashlib

from harness import event

NI = "JT 12 34 56 B"          # fictional, valid format; written with spaces on purpose
NI_NORM = "JT123456B"
# a month ago, so the annual refresher is neither in the future nor expired
RECENT = (datetime.date.today() - datetime.timedelta(days=30)).isoformat()


def test_one_event_end_to_end(system):
    pb = system.pb
    ev = event("smoke-1", ni_number=NI, qualification_code="RF-FIRE",
               completion_date=RECENT,
               evidence_hash=hashlib.sha256(b"smoke evidence").hexdigest())
    rep = system.submit([ev], provider="PRV-0001", ack="committed")
    assert rep.error_code == "", rep
    assert len(rep.replies) == 1
    r = rep.replies[0]
    assert r.provider_event_id == "smoke-1"
    assert r.outcome == pb.OUTCOME_COMMITTED, (r.reason_code, r.message)
    index = r.entry_index

    # resending the same event gives the same answer (idempotent)
    again = system.submit([ev], provider="PRV-0001", ack="committed").replies[0]
    assert (again.outcome, again.entry_index) == (pb.OUTCOME_COMMITTED, index)

    st = system.run_cli(["status", "PRV-0001", "smoke-1"])
    assert st.returncode == 0, st.stderr
    assert "state:     committed" in st.stdout
    assert f"index:     {index}" in st.stdout

    pp = system.run_cli(["passport", NI])
    assert pp.returncode == 0, pp.stdout + pp.stderr
    assert "Passport for worker " in pp.stdout
    # (index 0 is the register's genesis key entry, so the record may be index 1: skip the "1 entries" summary)
    rows = [l.split() for l in pp.stdout.splitlines()
            if l.split() and l.split()[0] == str(index) and "entries;" not in l]
    assert len(rows) == 1, pp.stdout
    row = rows[0]
    assert "RF-FIRE" in row and "PRV-0001" in row and RECENT in row
    assert row[-2:] == ["ok", "ok"], pp.stdout          # signature ok, inclusion ok
    assert "valid" in row, pp.stdout
    print(pp.stdout)
    # the NI number is never echoed back
    assert NI_NORM not in pp.stdout + pp.stderr
    for svc in ("intake", "verify", "signer", "notify", "bus"):
        assert NI_NORM not in system.log_text(svc), f"{svc} logged the NI number"


def test_cli_submit_and_unknown_status(system, tmp_path):
    """The CLI's own submit path: NDJSON with a malformed line, per-event lines, summary."""
    f = tmp_path / "events.ndjson"
    f.write_text(
        '{"provider_event_id": "cli-1", "ni_number": "JT123456B", "qualification_code": "RF-FIRE",'
        ' "completion_date": "2025-03-04"}\n'
        "this line is not JSON\n")
    cp = system.run_cli(["submit", str(f), "--provider-key", system.provider_key_file("PRV-0001"),
                         "--timeout", "40"])
    assert cp.returncode == 0, cp.stdout + cp.stderr
    lines = [l.split("\t") for l in cp.stdout.splitlines() if "\t" in l]
    by_id = {l[0]: l for l in lines}
    assert by_id["cli-1"][1] == "committed", cp.stdout
    assert by_id["line:2"][1:3] == ["rejected", "MALFORMED_LINE"], cp.stdout
    assert "summary: 2 events: 1 committed, 0 accepted, 1 rejected" in cp.stdout

    st = system.run_cli(["status", "PRV-0001", "never-sent"])
    assert st.returncode == 1
    assert "unknown" in st.stdout


def test_passport_detects_a_rewritten_entry(system):
    """Flip one byte of a stored entry: the passport check fails (exit 1)."""
    rep = system.submit([event("tamper-1", ni_number=NI, qualification_code="RF-FIRE",
                               completion_date=RECENT)])
    r = rep.replies[0]
    assert r.outcome == system.pb.OUTCOME_COMMITTED, (r.reason_code, r.message)
    bundles = sorted((system.register_dir / "tile" / "entries").rglob("*"))
    bundle = [p for p in bundles if p.is_file()][-1]
    data = bytearray(bundle.read_bytes())
    data[-1] ^= 0x01                      # last byte of the last entry's signature
    bundle.chmod(0o644)
    bundle.write_bytes(bytes(data))
    pp = system.run_cli(["passport", NI])
    assert pp.returncode == 1, pp.stdout + pp.stderr
    # the register refuses to open when the right edge does not match its tiles;
    # otherwise the row shows both checks failed
    rows = [l.split() for l in pp.stdout.splitlines() if l.split()[:1] == [str(r.entry_index)]]
    if rows:
        assert rows[0][-2:] == ["FAILED", "FAILED"], pp.stdout
        assert "SOME CHECKS FAILED" in pp.stdout
    else:
        assert "does not match" in pp.stderr, pp.stdout + pp.stderr


def test_passport_shows_revocation(system):
    """A revoked record is shown as revoked, naming the revocation entry and its reason."""
    ni = "CE 65 43 21 A"
    first = system.submit([event("rv-1", ni_number=ni, qualification_code="RF-FIRE",
                                 completion_date=RECENT)]).replies[0]
    assert first.outcome == system.pb.OUTCOME_COMMITTED, (first.reason_code, first.message)
    rev = system.submit([event("rv-1-revoke", ni_number=ni, qualification_code="RF-FIRE",
                               completion_date=RECENT, kind="revocation",
                               revokes_event_id="rv-1",
                               revocation_reason="ISSUED_IN_ERROR")]).replies[0]
    assert rev.outcome == system.pb.OUTCOME_COMMITTED, (rev.reason_code, rev.message)
    pp = system.run_cli(["passport", ni])
    assert pp.returncode == 0, pp.stdout + pp.stderr
    assert f"revoked (by #{rev.entry_index}, ISSUED_IN_ERROR)" in pp.stdout, pp.stdout
    assert f"revokes #{first.entry_index} (ISSUED_IN_ERROR)" in pp.stdout, pp.stdout
