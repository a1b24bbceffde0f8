"""notify_subs.py -- employer subscriptions for notify tests, written straight into Redis
as the gateway writes them (format: services/notify/notify_keys.h), and the worker pseudonym
they are keyed by."""

import time


def worker_hex(system):
    """The hex pseudonym of the one worker the system has entries for."""
    with system.redis() as r:
        keys = [k if isinstance(k, str) else k.decode() for k in r.keys("cp:w:{*}:entries")]
    assert len(keys) == 1, keys
    return keys[0][len("cp:w:{"):-len("}:entries")]


def subscribe(system, sub_id, worker, url, expires_in_s=30 * 86400, events="", entries="",
              employer="Employer", share_code="sc_1"):
    """Subscribe `url` to `worker`'s records (events/entries: comma lists, "" = all)."""
    with system.redis() as r:
        r.cmd("HSET", f"cp:sub:{{{sub_id}}}", "url", url, "worker", worker, "employer", employer,
              "share_code", share_code, "expires_at", str(int(time.time()) + expires_in_s),
              "events", events, "entries", entries, "created", str(int(time.time())))
        r.cmd("SADD", f"cp:w:{{{worker}}}:subs", sub_id)
