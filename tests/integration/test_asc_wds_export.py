"""test_asc_wds_export.py -- a verified passport's training as an ASC-WDS training bulk-upload file:
`carepass verify FILE --vkey VKEY --asc-wds OUT --establishment ID --worker-id ID`, offline (issue 12,
item 5). The file is checked here against ASC-WDS's published column rules by a reader of its own
(Python's csv module), not by carepass's writer: the header and the eight columns in order, ids of at
most 50 characters, CATEGORY one of ASC-WDS's bulk-upload training category codes, DD/MM/YYYY dates
that are real and not in the future, an expiry after completion or empty, ACCREDITED one of 1, 0,
999 or empty, and NOTES naming the register entry so the line can be checked. The writer's own
rules are unit-tested in tests/unit/test_ascwds.c."""

import csv
import datetime
import io

import pytest

from harness import event

NI = "AB123456C"
COLUMNS = ["LOCALESTID", "UNIQUEWORKERID", "CATEGORY", "DESCRIPTION", "DATECOMPLETED", "EXPIRYDATE", "ACCREDITED",
           "NOTES"]
# ASC-WDS's bulk-upload training category codes (the BUDI side of its backend/reference/trainingCategory.js)
BUDI_CODES = set(range(1, 52)) - {3, 4, 24}


def uk_date(s):
    return datetime.datetime.strptime(s, "%d/%m/%Y").date()


def check_file(text, today):
    """The file against the column rules; returns the data rows as dicts."""
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == COLUMNS
    out = []
    for n, row in enumerate(rows[1:], start=2):
        assert len(row) == len(COLUMNS), f"line {n}: {row}"
        r = dict(zip(COLUMNS, row))
        for col in ("LOCALESTID", "UNIQUEWORKERID"):
            assert 1 <= len(r[col]) <= 50 and r[col].isprintable(), f"line {n} {col}"
        assert int(r["CATEGORY"]) in BUDI_CODES, f"line {n} CATEGORY {r['CATEGORY']}"
        assert 1 <= len(r["DESCRIPTION"]) <= 120
        done = uk_date(r["DATECOMPLETED"])
        assert done <= today
        if r["EXPIRYDATE"]:
            assert uk_date(r["EXPIRYDATE"]) > done
        assert r["ACCREDITED"] in ("", "0", "1", "999")
        assert len(r["NOTES"]) <= 1000
        out.append(r)
    return out


@pytest.mark.carepass(extra_env={"CAREPASS_TODAY": "2026-06-01"})
def test_verified_training_becomes_an_asc_wds_file(system, tmp_path):
    rep = system.submit([event("a-l2", ni_number=NI, qualification_code="L2-ASCC", completion_date="2026-01-10",
                               assessor_id="ASR-1", provider_id="PRV-0004")], provider="PRV-0004")
    assert rep.replies[0].outcome == system.pb.OUTCOME_COMMITTED, rep
    rep = system.submit([event("a-mh", ni_number=NI, qualification_code="RF-MH", completion_date="2026-02-01",
                               assessor_id="ASR-1"),
                         event("a-bls", ni_number=NI, qualification_code="RF-BLS", completion_date="2026-03-01",
                               assessor_id="ASR-1"),
                         event("a-aut", ni_number=NI, qualification_code="CPD-AUT", completion_date="2026-03-05"),
                         event("a-hs", ni_number=NI, qualification_code="RF-HS", completion_date="2026-03-09"),
                         event("a-fire", ni_number=NI, qualification_code="RF-FIRE", completion_date="2026-04-01")])
    assert all(r.outcome == system.pb.OUTCOME_COMMITTED for r in rep.replies), rep
    idx = {r.provider_event_id: r.entry_index for r in rep.replies}
    # the health and safety record is revoked: it must not reach the employer's ASC-WDS
    rev = system.submit([event("a-hs-rev", ni_number=NI, qualification_code="RF-HS", completion_date="2026-03-09",
                               kind="revocation", revokes_event_id="a-hs", revocation_reason="ISSUED_IN_ERROR")])
    assert rev.replies[0].outcome == system.pb.OUTCOME_COMMITTED, rev
    f = tmp_path / "p.carepass"
    system.run_cli(["passport", NI, "--out", f], check=True)
    out = tmp_path / "training.csv"
    res = system.run_cli(["verify", f, "--vkey", system.register_dir / "vkey", "--at", "2026-06-01",
                          "--asc-wds", out, "--establishment", "SUNRISE-01", "--worker-id", "STAFF-0042"])
    assert res.returncode == 0, res.stdout + res.stderr
    text = out.read_bytes().decode("utf-8")
    rows = check_file(text, datetime.date(2026, 6, 1))
    by_cat = {r["CATEGORY"]: r for r in rows}
    assert set(by_cat) == {"15", "7", "32"}, rows        # moving people, first aid, autism
    mh = by_cat["15"]
    assert (mh["LOCALESTID"], mh["UNIQUEWORKERID"]) == ("SUNRISE-01", "STAFF-0042")
    assert mh["DESCRIPTION"].startswith("Moving and handling of people")
    assert (mh["DATECOMPLETED"], mh["EXPIRYDATE"], mh["ACCREDITED"]) == ("01/02/2026", "01/02/2027", "1")
    assert f"entry {idx['a-mh']}" in mh["NOTES"]
    assert by_cat["32"]["EXPIRYDATE"] == ""              # CPD that does not expire
    # what was left out is said, with why: the revoked record, the qualification, the unmapped code
    assert f"entry {idx['a-hs']} (RF-HS) is not in the ASC-WDS file: revoked" in res.stderr
    assert "(L2-ASCC) is not in the ASC-WDS file: a qualification" in res.stderr
    assert f"entry {idx['a-fire']} (RF-FIRE) is not in the ASC-WDS file: no ASC-WDS training category" in res.stderr
    assert "3 line(s), 3 record(s) left out" in res.stderr
    # the file is written atomically beside the report, which stays on standard output
    assert "VERIFIED" in res.stdout and "LOCALESTID" not in res.stdout
    res = system.run_cli(["verify", f, "--vkey", system.register_dir / "vkey", "--asc-wds", "-",
                          "--establishment", "SUNRISE-01", "--worker-id", "STAFF-0042"])
    assert res.returncode == 2 and "file name" in res.stderr


@pytest.mark.carepass()
def test_bad_requests_for_the_export(system, tmp_path):
    rep = system.submit([event("b-mh", ni_number=NI, qualification_code="RF-MH", completion_date="2026-02-01",
                               assessor_id="ASR-1")])
    assert rep.replies[0].outcome == system.pb.OUTCOME_COMMITTED, rep
    f = tmp_path / "p.carepass"
    system.run_cli(["passport", NI, "--out", f], check=True)
    vk = system.register_dir / "vkey"
    out = tmp_path / "t.csv"
    # the ids are needed, and must be ids ASC-WDS takes
    res = system.run_cli(["verify", f, "--vkey", vk, "--asc-wds", out])
    assert res.returncode == 2 and "--establishment" in res.stderr and not out.exists()
    res = system.run_cli(["verify", f, "--vkey", vk, "--asc-wds", out, "--establishment", "A,B", "--worker-id", "W"])
    assert res.returncode == 2 and "without commas" in res.stderr and not out.exists()
    # a bundle that does not verify writes nothing
    bad = tmp_path / "bad.carepass"
    data = bytearray(f.read_bytes())
    data[-40] ^= 1
    bad.write_bytes(bytes(data))
    res = system.run_cli(["verify", bad, "--vkey", vk, "--asc-wds", out, "--establishment", "E", "--worker-id", "W"])
    assert res.returncode != 0 and not out.exists(), res.stdout + res.stderr
    # a mapping file that does not load is a usage error naming the file
    broken = tmp_path / "cats.json"
    broken.write_text('{"version": 1, "categories": [{"code": "NOPE"}]}')
    res = system.run_cli(["verify", f, "--vkey", vk, "--asc-wds", out, "--establishment", "E", "--worker-id", "W"],
                         env={"CAREPASS_ASCWDS_CATEGORIES": str(broken)})
    assert res.returncode == 2 and "cats.json" in res.stderr and not out.exists()
