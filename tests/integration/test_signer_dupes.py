"""test_signer_dupes.py -- the pipelined signer is idempotent: VerifiedRecords pushed straight into its
PULL socket with many duplicates interleaved at varied distances (in the same batch, in the batch
signed while the one before is appended, long after the original is in the register) are appended
once each and every copy is answered with the original's index.

The signer signs batch k+1 while batch k is being appended (services/signer/signer_batch.c); a
copy of an event of batch k that arrives in batch k+1 must be recognised through k's own index
(dup_inflight), not appended again. Small batches (SIGNER_BATCH_MAX) make the distances that land
in the held batch common. Checked afterwards with register_check.py (an independent reader):
size = 1 (genesis key entry) + distinct events, no provider_event_id twice, and Redis
cp:ev:{p:e} index = register position; and every copy's EventResult carries that position."""

import hashlib
import random
import time

import pytest
import zmq

from harness import DEFAULT_PROVIDER, internal_pb2
from register_check import ENTRY_TYPE_KEY, Register

DISTINCT = 4000          # distinct events (plus one probe)
DUP_SHARE = 0.2          # about this share is sent twice
BATCH_MAX = 64           # signer batch size for this test
TOPIC = "dupes-test"     # reply_to: results come back on this topic
DEADLINE_S = 50          # whole load, bounded


def pending_event(pb, event_id, reply_to=TOPIC):
    """A PendingEvent as verify forwards it: no personal data, a 32-byte worker pseudonym
    (here a hash of a made-up value, where intake uses a keyed BLAKE2b of the NI number)."""
    ev = pb.PendingEvent()
    ev.provider_id = DEFAULT_PROVIDER
    ev.provider_event_id = event_id
    ev.worker_pseudonym = hashlib.blake2b(f"worker-{hash(event_id) % 97}".encode(), digest_size=32).digest()
    ev.qualification_code = "RF-FIRE"
    ev.completion_date = "2025-03-03"
    ev.received_at = int(time.time() * 1000)
    ev.reply_to = reply_to
    return ev


def verified_record(system, event_id):
    rec = system.internal_pb.VerifiedRecord()
    rec.event.CopyFrom(pending_event(system.internal_pb, event_id))
    rec.entry_type = system.register_pb.ENTRY_TYPE_RECORD
    rec.valid_until = "2026-03-03"
    return rec.SerializeToString()


def send_order(rng):
    """Event ids in send order: each distinct id once, in order, and about DUP_SHARE of them
    again after a distance drawn from three ranges: within a batch, about one batch later (the
    held batch), and far later (already in the register)."""
    ids = [f"dup-{i:05d}" for i in range(DISTINCT)]
    keyed = [(float(i), e) for i, e in enumerate(ids)]
    for i in rng.sample(range(DISTINCT), int(DISTINCT * DUP_SHARE)):
        near, held, far = rng.randint(1, 8), rng.randint(BATCH_MAX // 2, 3 * BATCH_MAX), rng.randint(300, 3000)
        d = rng.choice((near, held, held, far))
        keyed.append((i + d + rng.random() * 0.5 + 0.25, ids[i]))
    keyed.sort()
    return ids, [e for _, e in keyed]


def recv_results(sub, want, deadline):
    """EventResults from the SUB socket until `want` arrived or the deadline passed."""
    got = []
    while len(got) < want:
        left = deadline - time.monotonic()
        if left <= 0 or not sub.poll(int(left * 1000)):
            break
        topic, body = sub.recv_multipart()
        res = internal_pb2.EventResult()
        res.ParseFromString(body)
        got.append(res)
    return got


@pytest.mark.carepass(services=("bus", "signer", "notify"),
                      extra_env={"CAREPASS_SIGNER_BATCH_MAX": BATCH_MAX})
def test_duplicates_across_pipelined_batches(system):
    t0 = time.monotonic()
    deadline = t0 + DEADLINE_S
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, TOPIC.encode())
    sub.connect(system.bus["RESULTS_OUT"])
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.setsockopt(zmq.SNDHWM, 0)
    push.setsockopt(zmq.SNDTIMEO, 10000)
    push.connect(f"tcp://127.0.0.1:{system.signer_port}")
    try:
        # the subscription must reach the signer's PUB through the bus before the load: send a
        # probe (a real event, committed once) until its result comes back
        probe = verified_record(system, "dup-probe")
        answers, probes = [], 0
        while not answers and time.monotonic() < t0 + 10:
            push.send(probe)
            probes += 1
            answers = recv_results(sub, 1, time.monotonic() + 0.5)
        assert answers and answers[0].provider_event_id == "dup-probe", "no result for the probe"
        time.sleep(0.3)
        recv_results(sub, 10**6, time.monotonic() + 0.2)   # drop the probe's other answers

        rng = random.Random(20250303)
        ids, order = send_order(rng)
        assert len(order) > DISTINCT * (1 + DUP_SHARE) - 1
        for eid in order:
            push.send(verified_record(system, eid))
        results = recv_results(sub, len(order), deadline)

        want_size = 1 + 1 + DISTINCT   # genesis key entry, probe, distinct events
        system.wait_for(lambda: Register(system.register_dir).size >= want_size,
                        timeout=max(1.0, deadline - time.monotonic()), what="every event appended")
        reg = Register(system.register_dir)
        assert reg.verify_checkpoint() and reg.root() == reg.checkpoint_root
        pb = system.register_pb
        assert reg.passport_entry(0, pb).entry_type == ENTRY_TYPE_KEY
        position, twice = {}, []
        for i in range(1, reg.size):
            eid = reg.passport_entry(i, pb).provider_event_id
            if eid in position:
                twice.append(f"{eid} at {position[eid]} and {i}")
            position.setdefault(eid, i)
        assert not twice, f"{len(twice)} events appended twice, e.g. {twice[:5]}"
        assert reg.size == want_size, f"register size {reg.size}, expected {want_size}"
        assert set(position) == set(ids) | {"dup-probe"}

        # every copy was answered, and with the original's position
        assert len(results) == len(order), f"{len(results)} results for {len(order)} records sent"
        wrong = [(r.provider_event_id, r.entry_index) for r in results
                 if r.outcome != system.pb.OUTCOME_COMMITTED or r.entry_index != position[r.provider_event_id]]
        assert not wrong, wrong[:10]

        # Redis: cp:ev:{p:e} index = register position (a copy answered with another index would
        # have overwritten it); wait for the signer to finish the updates of the last batch
        def redis_done():
            with system.redis() as r:
                return r.hget(f"cp:ev:{{{DEFAULT_PROVIDER}:{ids[-1]}}}", "index") is not None
        system.wait_for(redis_done, timeout=max(1.0, deadline - time.monotonic()), what="redis updated")
        with system.redis() as r:
            for eid, i in position.items():
                h = r.hgetall(f"cp:ev:{{{DEFAULT_PROVIDER}:{eid}}}")
                assert h.get("state") == b"committed" and h.get("index") == str(i).encode(), (eid, i, h)

        # the signer counted every copy as a duplicate, and the load really was pipelined: from
        # the batch sizes in its log (count + duplicates, in commit = arrival order), enough
        # copies arrived in the batch right after their original's, i.e. while it was held
        lines = [l for l in system.log_lines("signer") if l.get("msg") == "batch committed"]
        sizes = [int(l["count"]) + int(l["duplicates"]) for l in lines]
        assert sum(int(l["duplicates"]) for l in lines) == probes - 1 + len(order) - DISTINCT
        assert sum(sizes) == probes + len(order)
        batch_of = []
        for b, n in enumerate(sizes):
            batch_of += [b] * n
        batch_of = batch_of[probes:]          # the load's messages, in send order
        first_batch, next_batch = {}, 0
        for k, eid in enumerate(order):
            if eid not in first_batch:
                first_batch[eid] = batch_of[k]
            elif batch_of[k] == first_batch[eid] + 1:
                next_batch += 1
        assert next_batch >= 20, f"only {next_batch} copies landed in the batch after their original's"
        assert time.monotonic() - t0 < 60
    finally:
        push.close(linger=0)
        sub.close(linger=0)
