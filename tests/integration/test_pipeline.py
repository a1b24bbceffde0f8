"""test_pipeline.py -- the whole pipeline (intake -> verify -> signer -> notify) against
real Redis, the real service binaries and real ZeroMQ sockets on loopback.

Each test states one promise carepass makes to a training provider, an employer
or an auditor, and checks it from the outside: through intake's wire protocol,
the register files (read by an independent Python reader, register_check.py),
Redis, and a webhook receiver.
"""

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest
import zmq

from harness import SOURCE_DIR, CarepassSystem, event
from register_check import Register
from subject_check import worker_of
from webhook_receiver import WebhookReceiver

DATA = SOURCE_DIR / "data"


def load_ndjson(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def load_expected():
    out = {}
    for line in (DATA / "sample-events.expected.tsv").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        eid, outcome, reason = line.split("\t")[:3]
        out[eid] = (outcome, None if reason == "-" else reason)
    return out


def outcome_name(system, reply):
    return system.pb.Outcome.Name(reply.outcome).replace("OUTCOME_", "").lower()


def submit_by_provider(system, events, ack="committed"):
    """Submit events grouped by their provider_id (each provider with its own key)."""
    by_provider = defaultdict(list)
    for e in events:
        by_provider[e["provider_id"]].append(e)
    answers = {}
    for provider, evs in by_provider.items():
        rep = system.submit(evs, provider=provider, ack=ack)
        assert not rep.error_code, rep.error_message
        assert len(rep.replies) == len(evs)
        for e, r in zip(evs, rep.replies):
            assert r.provider_event_id == e["provider_event_id"]
            answers[e["provider_event_id"]] = r
    return answers


def register(system):
    return Register(system.register_dir)


def worker_indexes(system, pseudonym_hex):
    with system.redis() as r:
        return [int(x) for x in r.lrange(f"cp:w:{{{pseudonym_hex}}}:entries")]


# ---------------------------------------------------------------------------------------


def test_sample_events_get_their_expected_outcomes(system):
    """Every sample event, good or bad, gets the outcome and reason code the data says."""
    expected = load_expected()
    answers = submit_by_provider(system, load_ndjson(DATA / "sample-events.ndjson"))
    answers.update(submit_by_provider(system, load_ndjson(DATA / "sample-revocations.ndjson")))
    assert set(answers) == set(expected)
    for eid, (outcome, reason) in expected.items():
        r = answers[eid]
        assert outcome_name(system, r) == outcome, (eid, r)
        if reason:
            assert r.reason_code == reason, (eid, r.reason_code, r.message)
            assert r.message, "every rejection carries a sentence"
        else:
            assert r.reason_code == ""

    # What the register holds agrees with an independent reader.
    reg = register(system)
    assert reg.verify_checkpoint()
    assert reg.root() == reg.checkpoint_root
    committed = [r for r in answers.values() if r.outcome == system.pb.OUTCOME_COMMITTED]
    # the genesis key entry (index 0), all committed events and the derived Care Certificate
    assert reg.size == 1 + len(committed) + 1
    for r in committed:
        pe = reg.passport_entry(r.entry_index, system.register_pb)
        assert pe.provider_event_id == r.provider_event_id

    # No personal data in the register or in any log line.
    ni_numbers = {e["ni_number"].replace(" ", "").upper()
                  for e in load_ndjson(DATA / "sample-events.ndjson") if e["ni_number"]}
    for f in Path(system.register_dir).rglob("*"):
        if f.is_file():
            blob = f.read_bytes()
            for ni in ni_numbers:
                assert ni.encode() not in blob, f"NI number found in {f}"
    system.stop()
    for svc in system.services:
        text = system.log_text(svc)
        for ni in ni_numbers:
            assert ni not in text, f"NI number in the {svc} log"


def test_good_event_becomes_signed_entry_in_checkpointed_tree(system):
    rep = system.submit([event("good-1", ni_number="AB 12 34 56 C", qualification_code="RF-FIRE",
                               completion_date="2025-03-03", evidence_hash="11" * 32)])
    r = rep.replies[0]
    assert r.outcome == system.pb.OUTCOME_COMMITTED, r
    reg = register(system)
    assert reg.verify_checkpoint(), "checkpoint signature verifies with the published vkey"
    assert reg.size >= r.entry_index + 1
    assert reg.verify_entry(r.entry_index, system.register_pb)
    assert reg.verify_inclusion(r.entry_index), "leaf is in the checkpointed tree"
    assert reg.root() == reg.checkpoint_root
    # level-0 tile hashes are the leaf hashes
    assert reg.level0_tile_hashes(0)[: reg.size] == reg.leaves()[:256]
    pe = reg.passport_entry(r.entry_index, system.register_pb)
    assert pe.version == 2 and pe.worker_pseudonym == b""   # format 2, the default: no pseudonym
    assert pe.qualification_code == "RF-FIRE"
    assert pe.provider_id == "PRV-0001"
    assert pe.completion_date == "2025-03-03"
    assert pe.valid_until == "2026-03-03", "annual refresher valid for 12 months"
    assert pe.entry_type == system.register_pb.ENTRY_TYPE_RECORD
    assert len(worker_of(system, pe)) == 32
    assert bytes(pe.evidence_hash) == bytes.fromhex("11" * 32)
    # the worker index points at it
    assert r.entry_index in worker_indexes(system, worker_of(system, pe).hex())
    with system.redis() as rd:
        assert rd.hget("cp:ev:{PRV-0001:good-1}", "state") == b"committed"


def test_resent_batch_gets_same_answers_and_no_second_entry(system):
    batch = [event("rs-1", qualification_code="RF-FIRE"),
             event("rs-2", qualification_code="NO-SUCH-QUAL"),
             event("rs-3", ni_number="not an NI"),
             event("rs-4", qualification_code="RF-HS", completion_date="2024-06-01")]
    first = system.submit(batch)
    size = register(system).size
    for ack in ("committed", "accepted"):
        again = system.submit(batch, ack=ack)
        for a, b in zip(first.replies, again.replies):
            assert (a.provider_event_id, a.outcome, a.reason_code, a.entry_index) == \
                   (b.provider_event_id, b.outcome, b.reason_code, b.entry_index)
    assert register(system).size == size, "a resend appends nothing"
    # the same id with different content is refused, not silently merged
    changed = system.submit([event("rs-1", qualification_code="RF-HS")]).replies[0]
    assert changed.outcome == system.pb.OUTCOME_REJECTED
    assert changed.reason_code == "EVENT_ID_REUSED"


def test_unregistered_curve_key_is_refused(system, tmp_path):
    cp = system.run_cli(["keygen", "--out", tmp_path / "stranger.curve"], check=True)
    assert cp.stdout.strip()
    req = system.pb.SubmitRequest()
    req.events.append(system.pb.CompletionEvent(provider_event_id="x1", ni_number="AB123456C",
                                                qualification_code="RF-FIRE",
                                                completion_date="2025-01-01"))
    reply = system.raw_send(req.SerializeToString(), key=tmp_path / "stranger.curve", timeout=3)
    assert reply is None, "intake must not answer a key that is not in the provider registry"
    with system.redis() as r:
        assert r.keys("cp:ev:*") == []


def test_provider_cannot_submit_for_another_provider(system):
    rep = system.submit([event("own-1", provider_id="PRV-0001"),
                         event("other-1", provider_id="PRV-0002"),
                         event("blank-1")], provider="PRV-0001")
    own, other, blank = rep.replies
    assert own.outcome == system.pb.OUTCOME_COMMITTED
    assert other.outcome == system.pb.OUTCOME_REJECTED
    assert other.reason_code == "PROVIDER_MISMATCH"
    assert blank.outcome == system.pb.OUTCOME_COMMITTED, "empty provider_id is the credential's"
    with system.redis() as r:
        assert r.hget("cp:ev:{PRV-0002:other-1}", "state") is None
        assert r.hget("cp:ev:{PRV-0001:blank-1}", "state") == b"committed"


def test_sixteenth_standard_yields_the_care_certificate(system):
    ni = "JG103759A"
    first15 = [event(f"cc-{i:02d}", ni_number=ni, qualification_code=f"CC-STD-{i:02d}",
                     completion_date="2025-02-01", assessor_id="ASR-1") for i in range(1, 16)]
    rep = system.submit(first15)
    assert all(r.outcome == system.pb.OUTCOME_COMMITTED for r in rep.replies), rep
    pseudo = worker_of(system, register(system).passport_entry(rep.replies[0].entry_index, system.register_pb)).hex()

    codes = lambda: [register(system).passport_entry(i, system.register_pb).qualification_code  # noqa: E731
                     for i in worker_indexes(system, pseudo)]
    assert "CC" not in codes()
    last = system.submit([event("cc-16", ni_number=ni, qualification_code="CC-STD-16",
                                completion_date="2025-02-03", assessor_id="ASR-1")]).replies[0]
    assert last.outcome == system.pb.OUTCOME_COMMITTED
    system.wait_for(lambda: "CC" in codes(), what="derived Care Certificate in the worker's index")
    reg = register(system)
    awards = [i for i in worker_indexes(system, pseudo)
              if reg.passport_entry(i, system.register_pb).qualification_code == "CC"]
    assert len(awards) == 1
    pe = reg.passport_entry(awards[0], system.register_pb)
    assert pe.entry_type == system.register_pb.ENTRY_TYPE_DERIVED_AWARD
    assert pe.provider_id == "carepass"
    assert reg.verify_entry(awards[0], system.register_pb)
    # resending the 16th standard does not issue a second award
    system.submit([event("cc-16", ni_number=ni, qualification_code="CC-STD-16",
                         completion_date="2025-02-03", assessor_id="ASR-1")])
    assert codes().count("CC") == 1


def test_webhook_delivered_signed_and_retried_after_500(tmp_path):
    with WebhookReceiver() as rx:
        rx.fail_next(1, status=500)
        with CarepassSystem(tmp_path, providers={"PRV-0001": {"webhook_url": rx.url + "/hook"}},
                            extra_env={"CAREPASS_WEBHOOK_BACKOFF_MS": "100"}) as s:
            r = s.submit([event("wh-1")]).replies[0]
            assert r.outcome == s.pb.OUTCOME_COMMITTED
            rx.set_public_key((s.keys_dir / "notify.pub").read_text())

            def committed(reqs):
                return [q for q in reqs if q.json()["type"] == "record.committed"]
            rx.wait_for(lambda reqs: any(q.answered == 200 for q in committed(reqs)), timeout=30)
            # every delivery, including the failed ones, carries a valid signature
            assert rx.requests and all(rx.verify(q) for q in rx.requests)
            got = committed(rx.requests)
            data = got[-1].json()["data"]
            assert data["provider_event_id"] == "wh-1"
            assert data["entry_index"] == r.entry_index
            # the first delivery got 500 and came again, with the same webhook-id, until 200
            first = rx.requests[0]
            assert first.answered == 500
            rx.wait_for(lambda reqs: any(q.webhook_id == first.webhook_id and q.answered == 200
                                         for q in reqs), timeout=30)
            again = [q for q in rx.requests[1:] if q.webhook_id == first.webhook_id]
            assert [q.answered for q in again] == [200], "delivered once more, then no more"
            assert again[0].body == first.body
            # no personal data in any webhook
            for q in rx.requests:
                assert b"AB123456C" not in q.body


# ---- bad input: clear errors, never a crash, nothing else lost -------------------------

@pytest.mark.carepass(extra_env={"CAREPASS_MAX_MESSAGE_BYTES": "65536", "CAREPASS_MAX_BATCH": "20"})
def test_bad_requests_get_clear_errors_and_the_service_survives(system):
    def reply_of(raw):
        data = system.raw_send(raw, timeout=10)
        assert data is not None, "intake answers bad input"
        rep = system.pb.SubmitReply()
        rep.ParseFromString(data)
        return rep

    assert reply_of(b"\xff\xff\xff\xff garbage").error_code == "MALFORMED_REQUEST"
    # wrong wire type: field 1 (events, length-delimited) sent as a varint
    assert reply_of(b"\x08\x01").error_code == "MALFORMED_REQUEST"
    assert reply_of(system.pb.SubmitRequest().SerializeToString()).error_code == "BATCH_EMPTY"
    big = system.pb.SubmitRequest(events=[system.pb.CompletionEvent(provider_event_id=f"b{i}")
                                          for i in range(21)])
    assert reply_of(big.SerializeToString()).error_code == "BATCH_TOO_LARGE"
    huge = system.pb.SubmitRequest(request_id="h", events=[system.pb.CompletionEvent(
        provider_event_id="x", assessor_id="a" * 70000)])
    rep = reply_of(huge.SerializeToString())
    assert rep.error_code == "MESSAGE_TOO_LARGE" and "65536" in rep.error_message
    bad_ack = system.pb.SubmitRequest(events=[system.pb.CompletionEvent(provider_event_id="x")])
    raw = bad_ack.SerializeToString() + b"\x10\x07"  # ack = 7
    assert reply_of(raw).error_code == "INVALID_ACK_LEVEL"

    # unknown fields are ignored: a good event with extra fields is committed
    good = system.pb.SubmitRequest(ack=system.pb.ACK_LEVEL_COMMITTED, events=[
        system.pb.CompletionEvent(provider_event_id="unk-1", ni_number="AB123456C",
                                  qualification_code="RF-FIRE", completion_date="2025-01-01")])
    raw = bytearray(good.SerializeToString())
    raw += b"\xa2\x06\x03abc"  # field 100, length-delimited, unknown to carepass
    rep = reply_of(bytes(raw))
    assert not rep.error_code and rep.replies[0].outcome == system.pb.OUTCOME_COMMITTED

    # one batch, each event wrong in its own way; the good one in the middle is kept
    evs = [event("e-long-id-" + "x" * 80),
           event("e-bad-chars/../"),
           event("e-ni", ni_number="QQ123456C"),
           event("e-date", completion_date="2025-02-30"),
           event("e-future", completion_date="2099-01-01"),
           event("e-qual", qualification_code="NOPE-1"),
           event("e-good", qualification_code="RF-HS", completion_date="2024-01-10"),
           event("e-hash", evidence_hash=b"\x01\x02"),
           event("e-kind", kind=5),
           event("e-revoke-what", kind="revocation"),
           event("e-completion-revokes", revokes_event_id="x"),
           event("e-dup"), event("e-dup"),
           event("e-long-assessor", assessor_id="a" * 200),
           event("e-missing-ni", ni_number="")]
    reps = {r.provider_event_id: r for r in system.submit(evs).replies}
    want = {"e-bad-chars/../": "INVALID_EVENT_ID", "e-ni": "INVALID_WORKER_ID",
            "e-date": "INVALID_DATE", "e-future": "DATE_IN_FUTURE",
            "e-qual": "UNKNOWN_QUALIFICATION", "e-hash": "INVALID_EVIDENCE_HASH",
            "e-kind": "INVALID_KIND", "e-revoke-what": "MISSING_FIELD",
            "e-completion-revokes": "INVALID_KIND", "e-long-assessor": "FIELD_TOO_LONG",
            "e-missing-ni": "MISSING_FIELD"}
    for eid, code in want.items():
        assert reps[eid].outcome == system.pb.OUTCOME_REJECTED, eid
        assert reps[eid].reason_code == code, (eid, reps[eid].reason_code)
        assert reps[eid].message
        assert "QQ123456C" not in reps[eid].message
    long_id = [r for k, r in reps.items() if k.startswith("e-long-id")][0]
    assert long_id.reason_code == "FIELD_TOO_LONG"
    assert reps["e-good"].outcome == system.pb.OUTCOME_COMMITTED
    dup = system.submit([event("d-1"), event("d-1")]).replies
    assert dup[1].reason_code == "DUPLICATE_IN_BATCH"
    for svc in system.services:
        assert system.running(svc), f"{svc} died on bad input"


def test_frame_beyond_the_hard_limit_drops_only_that_connection(system):
    # Twice MAX_MESSAGE_BYTES is libzmq's ZMQ_MAXMSGSIZE: the connection is dropped.
    assert system.raw_send(b"\x00" * (2 * 4194304 + 10), timeout=3) is None
    r = system.submit([event("after-big")]).replies[0]
    assert r.outcome == system.pb.OUTCOME_COMMITTED


# ---- delivery guarantee -------------------------------------------------------------------

@pytest.mark.carepass(extra_env={"CAREPASS_REDRIVE_AFTER_MS": "500"})
def test_accepted_events_survive_sigkill_of_verify_and_signer(system):
    """An event acknowledged as accepted is never lost: kill -9 verify and signer while
    events are in flight; after restarts every event is committed exactly once."""
    import signal
    import time
    # With the signer dead, verify queues its records for the signer in memory;
    # killing verify then loses them, so only intake's redrive can bring them back.
    system.kill("signer", signal.SIGKILL)
    evs = [event(f"k-{i}", ni_number="CE654321A", qualification_code="RF-FIRE",
                 completion_date="2025-04-01") for i in range(50)]
    rep = system.submit(evs, ack="accepted")
    assert all(r.outcome == system.pb.OUTCOME_ACCEPTED for r in rep.replies)
    time.sleep(1.0)  # let verify take them off the bus
    system.kill("verify", signal.SIGKILL)
    system.restart("signer")
    system.restart("verify")

    def all_committed():
        with system.redis() as r:
            return all(r.hget(f"cp:ev:{{PRV-0001:k-{i}}}", "state") == b"committed"
                       for i in range(50))
    system.wait_for(all_committed, timeout=60, interval=0.2, what="all events committed")
    reg = register(system)
    ids = [reg.passport_entry(i, system.register_pb).provider_event_id for i in range(reg.size)]
    assert sorted(x for x in ids if x.startswith("k-")) == sorted(f"k-{i}" for i in range(50))
    assert reg.root() == reg.checkpoint_root
