#!/usr/bin/python3
"""bench_webhooks.py -- webhook fan-out: N deliveries from one notify to a local receiver.

Starts its own redis-server and one notify on free loopback ports, writes W workers
with S employer subscriptions each (W * S = N, default 1000 * 10) straight into
Redis as the gateway would, then adds W record.revoked NotifyJobs to the outbox
stream cp:{outbox} (pipelined, as the projection writes them) and times until the receiver has seen N distinct webhook-ids with a 2xx.
Fan-out (reading subscriptions, creating deliveries), signing and delivery are all
inside the timing. The receiver is an asyncio HTTP/1.1 keep-alive server in its own
process; the baseline, measured in the same run, is the receiver's raw rate with a
plain asyncio keep-alive client at the same concurrency.

    /usr/bin/python3 bench/bench_webhooks.py [--deliveries 10000] [--subs-per-worker 10]
        [--per-endpoint 8,64] [--build build] [--stats]

Target (issue 4): 10,000 deliveries in under 5 s. Prints figures; asserts nothing.
"""

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SRC / "tests" / "integration"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the receiver (own process) -------------------------------------------------

def receiver_main(port, ready, counts, stop):
    """Answer every POST with 200, keep-alive; counts[0] = requests, counts[1] = distinct ids."""
    seen = set()

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, wid = 0, None
                for line in head.split(b"\r\n"):
                    k, _, v = line.partition(b":")
                    k = k.strip().lower()
                    if k == b"content-length":
                        length = int(v)
                    elif k == b"webhook-id":
                        wid = v.strip()
                if length:
                    await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                counts[0] += 1
                if wid is not None and wid not in seen:
                    seen.add(wid)
                    counts[1] = len(seen)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.02)
        server.close()

    asyncio.run(main())


def raw_rate(port, concurrency, seconds):
    """Requests/s a plain asyncio keep-alive client gets from the receiver."""
    body = b'{"type":"record.revoked","data":{"subscription_id":"sub_x","entry_index":1}}'
    req = (b"POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"webhook-id: msg_baseline\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    done = 0

    async def one(deadline):
        nonlocal done
        r, w = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < deadline:
            w.write(req)
            await r.readuntil(b"\r\n\r\n")
            done += 1
        w.close()

    async def main():
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(one(deadline) for _ in range(concurrency)))

    t0 = time.monotonic()
    asyncio.run(main())
    return done / (time.monotonic() - t0)


# ---- the system under test --------------------------------------------------------

class Resp:
    """Minimal pipelined RESP client (write many commands, then read the replies)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def pipeline(self, cmds):
        out = []
        for c in cmds:
            out.append(b"*%d\r\n" % len(c))
            for a in c:
                a = a if isinstance(a, bytes) else str(a).encode()
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return [self._reply() for _ in cmds]

    def _reply(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t in (b"+", b":"):
            return rest
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if t == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise RuntimeError("bad reply %r" % line)


def proc_cpu_s(pid):
    """User + system CPU seconds of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def sched_s(pid):
    """(seconds on a CPU, seconds runnable but waiting for one) of a process (Linux schedstat)."""
    try:
        run, wait = Path(f"/proc/{pid}/schedstat").read_text().split()[:2]
        return int(run) / 1e9, int(wait) / 1e9
    except (OSError, ValueError):
        return float("nan"), float("nan")


def sched_snapshot(pids):
    return {name: sched_s(pid) for name, pid in pids.items()}


def print_stats(r, notify_pid, per_endpoint, before, pids):
    """--stats: where the work went during the timed part (CPU and run-queue waits of
    notify, redis and the receiver; Redis commands)."""
    info = {}
    for section in ("stats", "cpu", "commandstats"):
        for line in r.pipeline([["INFO", section]])[0].decode().splitlines():
            k, _, v = line.partition(":")
            if v:
                info[k] = v
    cpu = float(info.get("used_cpu_user", "nan")) + float(info.get("used_cpu_sys", "nan"))
    print(f"  [stats per-endpoint {per_endpoint}] notify CPU {proc_cpu_s(notify_pid):.2f} s, "
          f"redis CPU {cpu:.2f} s, redis commands {info.get('total_commands_processed')}")
    after = sched_snapshot(pids)
    print("      timed part: " + ", ".join(
        "%s on CPU %.2f s, waiting for a CPU %.2f s" % (name, after[name][0] - before[name][0],
                                                       after[name][1] - before[name][1])
        for name in pids))
    cmds = []
    for k, v in info.items():
        if k.startswith("cmdstat_"):
            kv = dict(x.split("=") for x in v.split(","))
            cmds.append((float(kv["usec"]), k[8:], int(kv["calls"]), float(kv["usec_per_call"])))
    for usec, name, calls, per in sorted(cmds, reverse=True)[:6]:
        print(f"      {name:14s} calls {calls:6d}  {usec / 1e6:6.3f} s  ({per:.1f} us/call)")


def run_case(args, build, tmp, per_endpoint, rx_port, counts):
    from carepass.v1 import internal_pb2  # noqa: E402

    rport = free_port()
    rdir = tmp / f"redis-{per_endpoint}"
    rdir.mkdir()
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(rdir)], stdout=subprocess.DEVNULL)
    notify = None
    try:
        for _ in range(100):
            try:
                r = Resp(rport)
                break
            except OSError:
                time.sleep(0.05)
        url = f"http://127.0.0.1:{rx_port}/hook"
        workers = args.deliveries // args.subs_per_worker
        cmds, hexes = [], []
        expires = str(int(time.time()) + 86400)
        for w in range(workers):
            pseud = os.urandom(32)
            hx = pseud.hex()
            hexes.append(pseud)
            for j in range(args.subs_per_worker):
                sid = "sub_%08x%012x%012x" % (per_endpoint, w, j)
                cmds.append(["HSET", "cp:sub:{%s}" % sid, "url", url, "worker", hx, "expires_at", expires])
                cmds.append(["SADD", "cp:w:{%s}:subs" % hx, sid])
            if len(cmds) > 5000:
                r.pipeline(cmds)
                cmds = []
        if cmds:
            r.pipeline(cmds)

        keys = tmp / f"keys-{per_endpoint}"
        keys.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAREPASS_")}
        env.update({"CAREPASS_WEBHOOK_ALLOW_HOSTS": "127.0.0.0/8",  # the receiver is on loopback
                    "CAREPASS_REDIS_PORT": str(rport),
                    "CAREPASS_NOTIFY_SIGNING_KEY": str(keys / "notify.key"),
                    "CAREPASS_PROVIDERS": str(SRC / "data" / "providers.json"),
                    "CAREPASS_WEBHOOK_PER_ENDPOINT": str(per_endpoint),
                    "CAREPASS_WEBHOOK_CONCURRENCY": str(max(64, per_endpoint)),
                    "CAREPASS_LOG_LEVEL": "warn"})
        notify = subprocess.Popen([str(build / "services" / "notify" / "notify")], env=env,
                                  stderr=open(tmp / f"notify-{per_endpoint}.log", "wb"))
        time.sleep(0.5)   # let notify connect

        pids = {"notify": notify.pid, "redis": redis.pid, "receiver": args.rx_pid}
        before = sched_snapshot(pids)
        base_reqs, base_ids = counts[0], counts[1]
        t0 = time.monotonic()
        adds = []
        for w, pseud in enumerate(hexes):
            job = internal_pb2.NotifyJob(type="record.revoked", provider_id="PRV-0001",
                                         provider_event_id=f"rev-{per_endpoint}-{w}", reason_code="ISSUED_IN_ERROR",
                                         entry_index=100000 + w, revokes_index=w + 1,
                                         qualification_code="RF-FIRE", worker_pseudonym=pseud,
                                         occurred_at=int(time.time() * 1000))
            adds.append(["XADD", "cp:{outbox}", "*", "j", job.SerializeToString()])
            if len(adds) >= 500:
                r.pipeline(adds)
                adds = []
        if adds:
            r.pipeline(adds)
        want = workers * args.subs_per_worker
        deadline = t0 + args.timeout
        while counts[1] - base_ids < want and time.monotonic() < deadline:
            time.sleep(0.002)
        elapsed = time.monotonic() - t0
        got = counts[1] - base_ids
        if args.stats:
            print_stats(r, notify.pid, per_endpoint, before, pids)
        return got, want, elapsed, counts[0] - base_reqs
    finally:
        if notify:
            notify.send_signal(signal.SIGTERM)
            try:
                notify.wait(10)
            except subprocess.TimeoutExpired:
                notify.kill()
                notify.wait()
        redis.terminate()
        redis.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deliveries", type=int, default=10000)
    ap.add_argument("--subs-per-worker", type=int, default=10)
    ap.add_argument("--per-endpoint", default="8,64", help="WEBHOOK_PER_ENDPOINT values to run")
    ap.add_argument("--build", default=os.environ.get("CAREPASS_BUILD_DIR", str(SRC / "build")))
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--baseline-seconds", type=float, default=2.0)
    ap.add_argument("--stats", action="store_true",
                    help="also print notify and Redis CPU seconds and Redis command counts per case")
    args = ap.parse_args()
    build = Path(args.build)
    sys.path.insert(0, str(build / "gen" / "py"))

    rx_port = free_port()
    ready, stop = mp.Event(), mp.Event()
    counts = mp.Array("l", 2, lock=False)
    rx = mp.Process(target=receiver_main, args=(rx_port, ready, counts, stop), daemon=True)
    rx.start()
    args.rx_pid = rx.pid
    tmp = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    try:
        if not ready.wait(10):
            sys.exit("receiver did not start")
        print(f"webhook fan-out benchmark: {args.deliveries} deliveries "
              f"({args.deliveries // args.subs_per_worker} record.revoked jobs x {args.subs_per_worker} "
              f"subscriptions), one local receiver, {os.cpu_count()} CPUs")
        for pe in [int(x) for x in args.per_endpoint.split(",")]:
            got, want, secs, reqs = run_case(args, build, tmp, pe, rx_port, counts)
            base = raw_rate(rx_port, pe, args.baseline_seconds)
            rate = got / secs if secs > 0 else 0
            print(f"  per-endpoint {pe:3d}: {got}/{want} delivered (exactly-once ids; {reqs} requests) "
                  f"in {secs:.2f} s = {rate:,.0f} deliveries/s"
                  f"{'' if got == want else '  (TIMED OUT)'}   "
                  f"| baseline: receiver raw keep-alive rate at {pe} connections = {base:,.0f} req/s "
                  f"(notify reaches {100 * rate / base:.0f}%)")
        print("  target: 10,000 deliveries in < 5 s")
    finally:
        stop.set()
        rx.join(5)
        if rx.is_alive():
            rx.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
