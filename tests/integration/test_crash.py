"""test_crash.py -- the signer killed with SIGKILL in the middle of appends never loses or
duplicates a committed entry, and always restarts on a tree that verifies.

Two ways of killing it, against the real services on loopback:

  * at named points inside the register writer (CAREPASS_TEST_CRASH_POINT=<point>:<n>,
    see common/cp_register.h): after an entry bundle, after a level-0 tile, after a
    higher tile, after every tile is fsynced but before the checkpoint, after the
    checkpoint rename, and just before reg_append returns -- each for a few n;
  * at random moments while a stream of submissions goes on.

After each kill the signer is restarted without the crash point, and the test waits
until intake's redrive (CAREPASS_REDRIVE_AFTER_MS=300) has brought every accepted
event to "committed". Then the register is read by the independent Python reader
(register_check.py) and must: carry a valid checkpoint signature, have a root equal
to the RFC 6962 recomputation over every entry, still hold every event that was ever
seen committed (at the index it was reported at), and hold no provider event id twice.
Every loop is bounded; the whole file runs in well under three minutes on two cores.
"""

import os
import random
import signal
import subprocess
import time

import pytest

from harness import event, find_binary, free_port
from register_check import Register, tile_index_path

NI = "CE654321A"            # one test worker (a valid NI number format; no real person)
CHUNK = 24                  # events per SubmitRequest
MAX_CHUNKS = 30             # most requests sent while waiting for the signer to die
COMMIT_TIMEOUT_S = 45.0     # redrive + restart + commit of everything outstanding
ENV = {"CAREPASS_REDRIVE_AFTER_MS": "300", "CAREPASS_SIGNER_BATCH_WAIT_MS": "2"}

# (point, n): every point of cp_register.h, most for more than one n. tile-upper needs a
# level-0 tile to be completed, so it comes after enough events to pass 256 entries.
CRASH_POINTS = [
    ("bundle", 1), ("tile0", 1), ("tiles-synced", 1), ("checkpoint-renamed", 1), ("appended", 1),
    ("bundle", 3), ("tile0", 2), ("tiles-synced", 3), ("checkpoint-renamed", 2), ("appended", 3),
    ("tile-upper", 1), ("bundle", 2), ("tile-upper", 2), ("checkpoint-renamed", 4),
]


class Tracker:
    """Every event submitted, and every (event -> index) ever seen committed in Redis."""

    def __init__(self, system):
        self.system = system
        self.submitted = []          # provider event ids, in order
        self.committed = {}          # provider event id -> register index first seen

    def submit(self, ids):
        evs = [event(i, ni_number=NI, qualification_code="RF-FIRE", completion_date="2025-04-01")
               for i in ids]
        rep = self.system.submit(evs, ack="accepted", timeout=20)
        assert not rep.error_code, rep.error_message
        assert all(r.outcome == self.system.pb.OUTCOME_ACCEPTED for r in rep.replies), rep
        self.submitted.extend(ids)

    def poll(self):
        """Record the committed states now in Redis; returns how many are committed."""
        with self.system.redis() as r:
            for eid in self.submitted:
                if eid in self.committed:
                    continue   # its index is checked against the register at the end
                state, idx = r.cmd("HMGET", f"cp:ev:{{PRV-0001:{eid}}}", "state", "index")
                if state == b"committed":
                    self.committed[eid] = int(idx)
        return len(self.committed)

    def wait_all_committed(self):
        self.system.wait_for(lambda: self.poll() == len(self.submitted), timeout=COMMIT_TIMEOUT_S,
                             interval=0.2, what=f"all {len(self.submitted)} events committed")


def check_register(system, tracker):
    """The register as an auditor reads it, against everything ever reported committed."""
    reg = Register(system.register_dir)
    assert reg.verify_checkpoint(), "checkpoint signature does not verify"
    assert reg.size == len(reg.entries)
    assert reg.root() == reg.checkpoint_root, "root over the entries differs from the checkpoint"
    ids = [reg.passport_entry(i, system.register_pb).provider_event_id for i in range(reg.size)]
    seen = {}
    for i, eid in enumerate(ids):
        assert eid not in seen, f"provider event id {eid} appears twice (indexes {seen[eid]} and {i})"
        seen[eid] = i
    for eid, idx in tracker.committed.items():
        assert seen.get(eid) == idx, f"{eid} was reported committed at {idx}, register has {seen.get(eid)}"
    missing = [e for e in tracker.submitted if e not in seen]
    assert not missing, f"accepted events missing from the register: {missing[:5]}"
    # spot-check entry signatures (all of them would be slow in Python for no gain)
    for i in sorted({0, reg.size // 2, reg.size - 1}):
        assert reg.verify_entry(i, system.register_pb)
    return reg


def signer_dead(system):
    return not system.running("signer")


@pytest.mark.carepass(extra_env=ENV, redis_persist=True)
def test_sigkill_at_every_crash_point(system):
    t = Tracker(system)
    t.submit([f"warm-{i}" for i in range(5)])
    t.wait_all_committed()
    seq = 0
    for point, n in CRASH_POINTS:
        system.restart("signer", extra_env={"CAREPASS_TEST_CRASH_POINT": f"{point}:{n}"})
        for _ in range(MAX_CHUNKS):
            ids = [f"{point}-{n}-{seq + k}" for k in range(CHUNK)]
            seq += CHUNK
            t.submit(ids)
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline and not signer_dead(system):
                t.poll()
                time.sleep(0.03)
            if signer_dead(system):
                break
        assert signer_dead(system), f"crash point {point}:{n} was never reached"
        assert system.procs["signer"].returncode == -signal.SIGKILL
        t.poll()   # what Redis says was committed before the restart
        system.restart("signer")
        t.wait_all_committed()
        reg = check_register(system, t)
        log = system.log_text("signer")
        assert "test crash point armed" in log
    assert reg.size > 256, "the run never completed a tile"

    # A partial tile of the checkpointed size that went missing is rebuilt on start.
    if reg.size % 256 == 0:
        t.submit(["edge-1"])
        t.wait_all_committed()
    system.kill("signer")
    reg = Register(system.register_dir)
    w = reg.size % 256
    rel0 = f"tile/0/{tile_index_path(reg.size // 256)}.p/{w}"
    rel1 = f"tile/1/{tile_index_path(0)}.p/{reg.size // 256}"
    os.unlink(system.register_dir / rel0)
    os.unlink(system.register_dir / rel1)
    system.restart("signer")
    assert (system.register_dir / rel0).is_file() and (system.register_dir / rel1).is_file()
    assert "rebuilt a missing tile" in system.log_text("signer")
    t.submit([f"after-rebuild-{i}" for i in range(10)])
    t.wait_all_committed()
    check_register(system, t)


@pytest.mark.carepass(extra_env=ENV, redis_persist=True)
def test_sigkill_at_random_moments_during_a_stream(system):
    rnd = random.Random(int(os.environ.get("CAREPASS_CRASH_SEED", "20261122")))
    t = Tracker(system)
    seq = 0
    kills = 0
    for round_ in range(10):
        # a stream of requests; the signer is killed at a random moment inside it
        kill_at = time.monotonic() + rnd.uniform(0.02, 0.6)
        for _ in range(8):
            n = rnd.randint(1, 40)
            t.submit([f"r{round_}-{seq + k}" for k in range(n)])
            seq += n
            if not signer_dead(system) and time.monotonic() >= kill_at:
                system.kill("signer", signal.SIGKILL)
                kills += 1
            time.sleep(rnd.uniform(0.0, 0.05))
        if not signer_dead(system):
            time.sleep(max(0.0, kill_at - time.monotonic()))
            system.kill("signer", signal.SIGKILL)
            kills += 1
        t.poll()
        system.restart("signer")
        if round_ % 3 == 2:   # now and then let everything settle and audit
            t.wait_all_committed()
            check_register(system, t)
    t.wait_all_committed()
    check_register(system, t)
    assert kills == 10


@pytest.mark.carepass(services=("bus", "signer"))
def test_second_signer_for_the_same_shard_is_refused(system, tmp_path):
    """Only one signer writes a shard: a second one on the same register exits at once."""
    env = dict(system.env)
    env["CAREPASS_SIGNER_BIND"] = f"tcp://127.0.0.1:{free_port()}"
    env["CAREPASS_HEALTH_DIR"] = str(tmp_path / "health2")
    cp = subprocess.run([str(find_binary("signer", system.build_dir))], env=env, cwd=str(tmp_path),
                        capture_output=True, text=True, timeout=20)
    assert cp.returncode != 0
    assert "locked by another process" in cp.stderr + cp.stdout
    assert system.running("signer")
