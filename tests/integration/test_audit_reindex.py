"""test_audit_reindex.py -- the register is the system of record: Redis can be rebuilt from it
(`carepass reindex`), and anyone can audit it (`carepass audit`, from a directory or over HTTP).
"""

import functools
import http.server
import shutil
import threading
from pathlib import Path

from harness import free_port
from test_pipeline import DATA, load_ndjson, submit_by_provider

WORKERS = sorted({e["ni_number"] for e in load_ndjson(DATA / "sample-events.ndjson")
                  if e["ni_number"] and not e["provider_event_id"].startswith("bad-")})


def submit_samples(system):
    answers = submit_by_provider(system, load_ndjson(DATA / "sample-events.ndjson"))
    answers.update(submit_by_provider(system, load_ndjson(DATA / "sample-revocations.ndjson")))
    return answers


def status_answers(system, events):
    """`carepass status` of every event (without the received time, which is intake's clock)."""
    out = {}
    for e in events:
        cp = system.run_cli(["status", e["provider_id"], e["provider_event_id"]])
        lines = [ln for ln in cp.stdout.splitlines() if not ln.startswith("received:")]
        out[(e["provider_id"], e["provider_event_id"])] = (cp.returncode, "\n".join(lines))
    return out


def passport_answers(system):
    return {ni: system.run_cli(["passport", ni], check=True).stdout for ni in WORKERS}


def derived_keys(system):
    """Every derived key the register can rebuild, read straight from Redis."""
    snap = {}
    with system.redis() as r:
        for k in r.keys("cp:w:*"):
            if k.endswith(":entries"):
                snap[k] = sorted(int(x) for x in r.lrange(k))
            elif k.endswith(":r") or k.endswith(":award_gen"):
                # hashes: format 2's openings of the worker's entries; an award's generation and
                # the id of the last one issued ("<code>:last", written with every new award)
                snap[k] = r.hgetall(k)
            else:
                snap[k] = sorted(r.cmd("SMEMBERS", k))
        for k in r.keys("cp:ev:*"):
            h = r.hgetall(k)
            if h.get("state") == b"committed":
                snap[k] = {f: h.get(f) for f in ("state", "index", "digest", "revoked_by")}
        snap["indexed"] = r.get("cp:reg:{0}:indexed")
    return snap


def audit(system, where, *extra):
    return system.run_cli(["audit", str(where), "--vkey", str(system.register_dir / "vkey"), *extra])


def test_flushall_then_reindex_gives_the_same_answers(system):
    answers = submit_samples(system)
    events = load_ndjson(DATA / "sample-events.ndjson") + load_ndjson(DATA / "sample-revocations.ndjson")
    committed = [e for e in events if answers[e["provider_event_id"]].outcome == system.pb.OUTCOME_COMMITTED]
    assert len(committed) > 20
    before_status = status_answers(system, committed)
    before_passports = passport_answers(system)
    before_keys = derived_keys(system)
    assert any("revoked" in p for p in before_passports.values())

    with system.redis() as r:
        r.cmd("FLUSHALL")
    assert system.run_cli(["passport", WORKERS[0]]).stdout.count("\n") <= 2   # nothing left
    cp = system.run_cli(["reindex"], check=True)
    assert "reindexed" in cp.stdout

    assert status_answers(system, committed) == before_status
    assert passport_answers(system) == before_passports
    assert derived_keys(system) == before_keys

    # a re-run changes nothing, and a provider resending its batches gets the same answers
    system.run_cli(["reindex"], check=True)
    assert derived_keys(system) == before_keys
    again = submit_samples(system)
    for e in committed:
        a, b = answers[e["provider_event_id"]], again[e["provider_event_id"]]
        assert (b.outcome, b.entry_index) == (a.outcome, a.entry_index), e["provider_event_id"]
    assert derived_keys(system) == before_keys


def test_audit_passes_on_disk_and_over_http_and_fails_on_tampering(system, tmp_path):
    submit_samples(system)
    early = tmp_path / "early.checkpoint"
    early.write_bytes((system.register_dir / "checkpoint").read_bytes())
    system.submit([{"provider_event_id": "late-1", "ni_number": "AB123456C",
                    "qualification_code": "RF-FIRE", "completion_date": "2025-03-03"}])

    cp = audit(system, system.register_dir, "--since", early)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "AUDIT PASSED" in cp.stdout
    assert "consistency: passed" in cp.stdout
    assert "entries/s" in cp.stdout

    # the same paths over HTTP (python's http.server serving the register directory)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(system.register_dir))
    handler.log_message = lambda *a, **k: None
    port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        cp = audit(system, f"http://127.0.0.1:{port}", "--since", early)
        assert cp.returncode == 0, cp.stdout + cp.stderr
        assert "AUDIT PASSED" in cp.stdout
    finally:
        srv.shutdown()
        srv.server_close()

    # tampered copies: each fails with a message naming what failed
    def tampered(name, change):
        d = tmp_path / name
        shutil.copytree(system.register_dir, d)
        change(d)
        cp = audit(system, d)
        assert cp.returncode == 1, (name, cp.stdout)
        assert "AUDIT FAILED" in cp.stdout or "failed" in cp.stdout, (name, cp.stdout)
        return cp.stdout

    size = int((system.register_dir / "checkpoint").read_text().split("\n")[1])
    assert 0 < size < 256, "the tampering below assumes one partial tile"

    def flip_entry_byte(d):
        f = d / "tile" / "entries" / "000.p" / str(size)
        b = bytearray(f.read_bytes())
        b[40] ^= 1
        f.write_bytes(bytes(b))

    out = tampered("entry-byte", flip_entry_byte)
    assert "tiles: failed" in out and "differs from the recomputed leaf hash" in out

    def truncate_tile(d):
        f = d / "tile" / "0" / "000.p" / str(size)
        f.write_bytes(f.read_bytes()[:-5])

    out = tampered("truncated-tile", truncate_tile)
    assert "truncated" in out

    def forge_checkpoint(d):
        text = (d / "checkpoint").read_text().split("\n")
        sig = text[-2]
        text[-2] = sig[:-6] + ("AAAA" if sig[-6:-2] != "AAAA" else "BBBB") + sig[-2:]
        (d / "checkpoint").write_text("\n".join(text))

    out = tampered("forged-checkpoint", forge_checkpoint)
    assert "checkpoint signature: failed" in out

    def missing_bundle(d):
        (d / "tile" / "entries" / "000.p" / str(size)).unlink()

    out = tampered("missing-bundle", missing_bundle)
    assert "missing" in out


def test_audit_of_a_hostile_mirror_reports_the_damage_only(system, tmp_path):
    """A mirror serving a truncated or over-long entry bundle: the audit prints the bundle's
    error and nothing else (once, queued signature checks read the freed bundle and blamed
    intact entries); a checkpoint claiming 2^64 - 1 entries: "tree size too large"."""
    submit_samples(system)
    size = int((system.register_dir / "checkpoint").read_text().split("\n")[1])
    assert 0 < size < 256, "the damage below assumes one partial tile"
    bundle = Path("tile") / "entries" / "000.p" / str(size)
    good = (system.register_dir / bundle).read_bytes()
    mirror = tmp_path / "mirror"
    shutil.copytree(system.register_dir, mirror)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    handler.log_message = lambda *a, **k: None
    port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{port}"

    def verdict_lines(where):
        cp = audit(system, where, "--threads", "2")
        assert cp.returncode == 1, cp.stdout + cp.stderr
        assert "ERROR: AddressSanitizer" not in cp.stderr, cp.stderr
        return [ln for ln in cp.stdout.splitlines() if not ln.startswith("register ")]

    try:
        (mirror / bundle).write_bytes(good[:-10])
        assert verdict_lines(url) == [
            f"entries: failed (entry bundle {bundle} is truncated or corrupt ({size - 1} entries read, "
            f"{size} expected))",
            "AUDIT FAILED: 1 check(s) failed"]
        (mirror / bundle).write_bytes(good + b"\x00\x05abcde")
        assert verdict_lines(url) == [
            f"entries: failed (entry bundle {bundle} is truncated or corrupt ({size} entries read, "
            f"{size} expected, trailing bytes))",
            "AUDIT FAILED: 1 check(s) failed"]
        (mirror / bundle).write_bytes(good)
        text = (mirror / "checkpoint").read_text().split("\n")
        text[1] = str(2**64 - 1)
        (mirror / "checkpoint").write_text("\n".join(text))
        for where in (url, mirror):
            assert verdict_lines(where) == [
                "checkpoint: failed (checkpoint tree size too large: 18446744073709551615, a tree holds at most "
                "9223372036854775807 entries (the checkpoint is corrupt or forged))"]
    finally:
        srv.shutdown()
        srv.server_close()
