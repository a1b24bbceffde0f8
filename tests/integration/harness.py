"""harness.py -- start a whole carepass system (Redis + services) on loopback for integration tests.

Every integration test uses this module, usually through the ``system`` pytest
fixture of conftest.py::

    def test_something(system):
        reply = system.submit([{"provider_event_id": "e1", "ni_number": "AB123456C",
                                "qualification_code": "RF-FIRE", "completion_date": "2025-03-03"}])
        assert reply.replies[0].outcome == system.pb.OUTCOME_COMMITTED
        assert system.redis().hget("cp:ev:{PRV-0001:e1}", "state") == b"committed"

or directly, for tests that need their own set-up::

    with CarepassSystem(tmp_path, services=("bus", "intake"), extra_env={...}) as s:
        ...

What it does:
  * picks free loopback ports for Redis, every bus endpoint, intake and the signer
    (never the default ports, so it can run beside a developer's system);
  * starts Debian's redis-server with its data in the test's directory (no
    persistence unless ``redis_persist=True``);
  * makes a CurveZMQ key pair per provider with ``carepass keygen`` and writes
    a providers.json from data/providers.json with those keys (optionally with
    webhook URLs or fields overridden, and extra providers);
  * starts each service binary with the CAREPASS_* environment, logs to
    <tmpdir>/log/<service>.log, and waits for its health file;
  * offers submit() (a Python DEALER with CurveZMQ speaking the protobuf wire
    protocol), raw_send(), redis() (a tiny RESP client), run_cli(), kill(),
    restart() and stop() (SIGTERM, then SIGKILL after a timeout; prints the
    tail of each log when asked to).

Nothing here talks to anything but 127.0.0.1; every wait is bounded.
"""

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("CAREPASS_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD_DIR = Path(os.environ.get("CAREPASS_BUILD_DIR", SOURCE_DIR / "build"))

# Generated protobuf bindings live in <build>/gen/py (never committed).
_PB_PATH = str(BUILD_DIR / "gen" / "py")
if _PB_PATH not in sys.path:
    sys.path.insert(0, _PB_PATH)

import zmq  # noqa: E402  (python3-zmq)

import api_contract  # noqa: E402  (gateway responses checked against openapi.json)

try:  # noqa: E402
    from carepass.v1 import event_pb2, internal_pb2, register_pb2  # type: ignore
except ImportError as exc:  # pragma: no cover - a build problem, explained clearly
    raise ImportError(
        f"carepass protobuf bindings not found in {_PB_PATH}: build first "
        f"(cmake --build {BUILD_DIR}) and set CAREPASS_BUILD_DIR ({exc})") from exc

ALL_SERVICES = ("bus", "intake", "verify", "signer", "notify")
# Start order: the bus first (everyone connects to it), intake last (it is the door).
START_ORDER = ("bus", "verify", "signer", "notify", "gateway", "intake")
DEFAULT_PROVIDER = "PRV-0001"
HEALTH_TIMEOUT_S = 120.0 if os.environ.get("CAREPASS_TEST_WRAP") else 20.0  # valgrind starts slowly
STOP_TIMEOUT_S = 60.0 if os.environ.get("CAREPASS_TEST_WRAP") else 10.0


# CAREPASS_WEBHOOK_ALLOW_HOSTS for tests: their webhook receivers are on loopback
LOOPBACK_ALLOWED = "127.0.0.0/8,::1,localhost"

def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binary(name, build_dir=None):
    """Path of a service binary: <build>/services/<name>/<name> or carepass-<name>."""
    build = Path(build_dir or BUILD_DIR)
    for cand in (build / "services" / name / name,
                 build / "services" / name / f"carepass-{name}",
                 build / "services" / f"carepass-{name}",
                 build / "bin" / name,
                 build / "bin" / f"carepass-{name}"):
        if cand.is_file() and os.access(cand, os.X_OK):
            return cand
    raise FileNotFoundError(f"no binary for service {name!r} under {build} (is it built?)")


def cli_binary(build_dir=None):
    """Path of the carepass CLI (<build>/tools/carepass)."""
    build = Path(build_dir or BUILD_DIR)
    for cand in (build / "tools" / "carepass", build / "tools" / "carepass" / "carepass"):
        if cand.is_file() and os.access(cand, os.X_OK):
            return cand
    raise FileNotFoundError(f"carepass CLI not found under {build}/tools (is it built?)")


def read_curve_pair(path):
    """(public_z85, secret_z85) from a key-pair file written by cp_curve_load / carepass keygen."""
    pub = sec = None
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line.startswith("public="):
            pub = line[7:]
        elif line.startswith("secret="):
            sec = line[7:]
    if not pub or not sec:
        raise ValueError(f"{path} is not a CurveZMQ key pair file")
    return pub, sec


def read_curve_public(path):
    """The Z85 public key in a .pub file (or the public= line of a pair file)."""
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line.startswith("public="):
            line = line[7:]
        if len(line) == 40 and not line.startswith("secret="):
            return line
    raise ValueError(f"{path} holds no CurveZMQ public key")


class RespError(Exception):
    """An error reply from Redis."""


class Resp:
    """A tiny Redis client (RESP2 over a socket): python3-redis may not be installed.

    cmd("SET", "k", "v") returns bytes / int / list / None, and raises RespError
    for an error reply. A few helpers (get, hgetall, lrange, ...) decode for
    convenience.
    """

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _readline(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("Redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _readexact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("Redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._readline()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._readexact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ConnectionError(f"unexpected RESP reply {line[:40]!r}")

    def cmd(self, *args):
        """Send one command; return its reply (raises RespError on an error reply)."""
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        r = self._reply()
        if isinstance(r, RespError):
            raise r
        return r

    # convenience helpers
    def get(self, key):
        return self.cmd("GET", key)

    def hget(self, key, field):
        return self.cmd("HGET", key, field)

    def hgetall(self, key):
        """HGETALL as {str: bytes}."""
        r = self.cmd("HGETALL", key) or []
        return {r[i].decode(): r[i + 1] for i in range(0, len(r), 2)}

    def lrange(self, key, start=0, stop=-1):
        return self.cmd("LRANGE", key, start, stop) or []

    def keys(self, pattern="*"):
        return [k.decode() for k in (self.cmd("KEYS", pattern) or [])]

    def ping(self):
        return self.cmd("PING") == b"PONG"


def event(provider_event_id, ni_number="AB123456C", qualification_code="RF-FIRE",
          completion_date="2025-03-03", **fields):
    """A CompletionEvent dict with sensible defaults (see CarepassSystem.submit)."""
    d = {"provider_event_id": provider_event_id, "ni_number": ni_number,
         "qualification_code": qualification_code, "completion_date": completion_date}
    d.update(fields)
    return d


def to_pb_event(d):
    """Build a CompletionEvent from a dict of proto field names. evidence_hash may be
    64 hex chars or bytes; kind may be "completion" / "revocation" or the enum value."""
    ev = event_pb2.CompletionEvent()
    for k, v in d.items():
        if v is None:
            continue
        if k == "evidence_hash":
            ev.evidence_hash = bytes.fromhex(v) if isinstance(v, str) else bytes(v)
        elif k == "kind":
            if isinstance(v, str):
                v = {"": 0, "completion": event_pb2.EVENT_KIND_COMPLETION,
                     "revocation": event_pb2.EVENT_KIND_REVOCATION}.get(v.lower(), v)
                if isinstance(v, str):
                    v = event_pb2.EventKind.Value(v)
            ev.kind = v
        else:
            setattr(ev, k, v)
    return ev


class CarepassSystem:
    """A running carepass system in `tmpdir`. See the module docstring.

    tmpdir        directory for keys, register, Redis data, health files and logs
    build_dir     the CMake build directory (default $CAREPASS_BUILD_DIR or <src>/build)
    services      which services to run (default all five)
    extra_env     CAREPASS_* (or other) variables for every service and the CLI
    providers     {provider id: {field: value}} overrides applied to data/providers.json
                  (e.g. {"PRV-0001": {"webhook_url": "http://127.0.0.1:9/hook"}})
    extra_providers  list of provider dicts appended to the registry (they get keys too)
    redis_persist    run Redis with appendonly yes (for restart / durability tests)
    start         start everything at once (otherwise call start())
    """

    def __init__(self, tmpdir, build_dir=None, services=ALL_SERVICES, extra_env=None,
                 providers=None, extra_providers=(), redis_persist=False, start=True):
        self.dir = Path(tmpdir)
        self.build_dir = Path(build_dir or BUILD_DIR)
        self.source_dir = SOURCE_DIR
        self.services = tuple(services)
        self.extra_env = dict(extra_env or {})
        self.provider_overrides = dict(providers or {})
        self.extra_providers = list(extra_providers)
        self.redis_persist = redis_persist
        self.pb = event_pb2               # enums and messages: self.pb.OUTCOME_COMMITTED ...
        self.internal_pb = internal_pb2
        self.register_pb = register_pb2
        self.procs = {}                   # service name -> Popen
        self.logs = {}                    # service name -> open log file
        self.redis_proc = None
        self.zctx = zmq.Context.instance()
        self._sockets = {}                # provider id -> DEALER
        self._req_seq = 0
        self.started = False

        for sub in ("keys/providers", "register", "redis", "health", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.keys_dir = self.dir / "keys"
        self.provider_keys_dir = self.keys_dir / "providers"
        self.register_dir = self.dir / "register"
        self.health_dir = self.dir / "health"
        self.log_dir = self.dir / "log"
        self.providers_file = self.dir / "providers.json"

        self._pick_ports()
        if start:
            self.start()

    # ---- set-up -------------------------------------------------------------

    def _pick_ports(self):
        """Choose free loopback ports for Redis, the bus, intake and the signer."""
        self.redis_port = free_port()
        self.intake_port = free_port()
        self.signer_port = free_port()
        self.gateway_port = free_port()
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"
        self.metrics_port = free_port()   # the gateway's operator listener (/metrics)
        api_contract.watch_port(self.gateway_port)   # its responses are checked against openapi.json
        api_contract.watch_port(self.metrics_port, "operator")
        self.bus = {name: f"tcp://127.0.0.1:{free_port()}" for name in (
            "VERIFY_IN", "VERIFY_OUT", "RESULTS_IN", "RESULTS_OUT")}
        self.intake_endpoint = f"tcp://127.0.0.1:{self.intake_port}"
        self.env = self._make_env()

    def _make_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAREPASS_")}
        env.update({
            "CAREPASS_LOG_LEVEL": "info",
            "CAREPASS_HEALTH_DIR": str(self.health_dir),
            "CAREPASS_REDIS_HOST": "127.0.0.1",
            "CAREPASS_REDIS_PORT": str(self.redis_port),
            "CAREPASS_INTAKE_BIND": self.intake_endpoint,
            "CAREPASS_INTAKE_ENDPOINT": self.intake_endpoint,
            "CAREPASS_INTAKE_CURVE_KEY": str(self.keys_dir / "intake.curve"),
            "CAREPASS_PSEUDONYM_SECRET": str(self.keys_dir / "pseudonym.secret"),
            "CAREPASS_AWARD_TAG_SECRET": str(self.keys_dir / "award-tag.secret"),
            "CAREPASS_SIGNING_KEY": str(self.keys_dir / "signer.key"),
            "CAREPASS_SUBJECT_KEYS": str(self.keys_dir / "subject-keys"),
            "CAREPASS_NOTIFY_SIGNING_KEY": str(self.keys_dir / "notify.key"),
            "CAREPASS_WEBHOOK_SECRETS": str(self.keys_dir / "webhook-secrets"),
            "CAREPASS_SIGNER_BIND": f"tcp://127.0.0.1:{self.signer_port}",
            "CAREPASS_SIGNER_ENDPOINTS": f"tcp://127.0.0.1:{self.signer_port}",
            "CAREPASS_REGISTER_DIR": str(self.register_dir),
            "CAREPASS_CATALOGUE": str(self.source_dir / "data" / "catalogue.json"),
            "CAREPASS_ROLES": str(self.source_dir / "data" / "roles.json"),
            "CAREPASS_ASCWDS_CATEGORIES": str(self.source_dir / "data" / "asc-wds-categories.json"),
            "CAREPASS_PROVIDERS": str(self.providers_file),
            "CAREPASS_EMPLOYERS": str(self.source_dir / "data" / "employers.json"),
            "CAREPASS_GATEWAY_BIND": f"127.0.0.1:{self.gateway_port}",
            "CAREPASS_GATEWAY_METRICS_BIND": f"127.0.0.1:{self.metrics_port}",
            "CAREPASS_TOKEN_SECRET": str(self.keys_dir / "token.secret"),
            "CAREPASS_SHARE_CODE_SECRET": str(self.keys_dir / "share-code.secret"),
            "CAREPASS_REVOKED_TOKENS": str(self.keys_dir / "revoked-tokens"),
            # the tests' webhook receivers listen on loopback, which carepass refuses by default
            "CAREPASS_WEBHOOK_ALLOW_HOSTS": LOOPBACK_ALLOWED,
        })
        for name, ep in self.bus.items():
            env[f"CAREPASS_BUS_{name}"] = ep
        env.update({k: str(v) for k, v in self.extra_env.items()})
        return env

    def start(self, attempts=3):
        """Start Redis, make keys and the registry, start every service and wait until
        healthy. A free port can be taken by another process between picking and
        binding; when start-up fails with "in use" in a log, ports are picked again
        (at most `attempts` tries)."""
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once()
            except BaseException as exc:
                in_use = isinstance(exc, (RuntimeError, TimeoutError)) and any(
                    "in use" in self.log_text(svc).lower() for svc in list(self.procs) + ["redis"])
                if not in_use or attempt == attempts:
                    self.stop(show_logs=True)
                    raise
                sys.stderr.write(f"harness: a port was taken during start-up; retrying ({attempt})\n")
                self.stop()
                for svc in list(self.procs) + ["redis"]:
                    self.log_path(svc).unlink(missing_ok=True)
                self.procs.clear()
                self._pick_ports()
        return self

    def _start_once(self):
        self.start_redis()
        self.make_provider_keys()
        self.write_providers()
        for svc in START_ORDER:
            if svc in self.services:
                self.start_service(svc)
                self.wait_healthy(svc)
        for svc in self.services:  # services not in START_ORDER (added later), last
            if svc not in START_ORDER:
                self.start_service(svc)
                self.wait_healthy(svc)
        self.started = True
        return self

    def start_redis(self):
        """Start redis-server on self.redis_port with its data in <tmpdir>/redis."""
        args = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                "--dir", str(self.dir / "redis"), "--daemonize", "no", "--save", "",
                "--logfile", str(self.log_dir / "redis.log")]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.redis_persist \
            else ["--appendonly", "no"]
        self.redis_proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                with Resp(self.redis_port, timeout=1) as r:
                    if r.ping():
                        return
            except (OSError, ConnectionError, RespError):
                pass
            if self.redis_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.redis_port}: "
                                   + self.log_tail("redis"))
            time.sleep(0.05)

    def stop_redis(self, sig=signal.SIGTERM):
        if self.redis_proc is not None and self.redis_proc.poll() is None:
            self.redis_proc.send_signal(sig)
            try:
                self.redis_proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.redis_proc.kill()
                self.redis_proc.wait(timeout=5)
        self.redis_proc = None

    def restart_redis(self):
        """Stop and start Redis on the same port (data survives only with redis_persist)."""
        self.stop_redis()
        self.start_redis()

    def base_providers(self):
        """The provider list from data/providers.json."""
        with open(self.source_dir / "data" / "providers.json") as f:
            return json.load(f)

    def provider_ids(self):
        ids = [p["id"] for p in self.base_providers()["providers"]]
        return ids + [p["id"] for p in self.extra_providers if p["id"] not in ids]

    def provider_key_file(self, provider):
        return self.provider_keys_dir / f"{provider}.curve"

    def make_provider_keys(self):
        """A CurveZMQ key pair per provider, made with `carepass keygen` (kept if present)."""
        for pid in self.provider_ids():
            path = self.provider_key_file(pid)
            if not path.exists():
                self.run_cli(["keygen", "--out", str(path)], check=True)

    def write_providers(self):
        """Write <tmpdir>/providers.json: data/providers.json + keys + overrides + extras."""
        reg = self.base_providers()
        reg["providers"] = reg["providers"] + [dict(p) for p in self.extra_providers]
        for p in reg["providers"]:
            pub = self.provider_keys_dir / f"{p['id']}.curve.pub"
            if pub.exists():
                p["curve_public_key"] = read_curve_public(pub)
            p.update(self.provider_overrides.get(p["id"], {}))
        tmp = self.providers_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(reg, indent=2) + "\n")
        tmp.replace(self.providers_file)
        return reg

    # ---- services -----------------------------------------------------------

    def start_service(self, svc, extra_env=None):
        """Start one service binary (its old health file is removed first)."""
        if svc in self.procs and self.procs[svc].poll() is None:
            raise RuntimeError(f"{svc} is already running")
        binary = find_binary(svc, self.build_dir)
        (self.health_dir / f"{svc}.health").unlink(missing_ok=True)
        env = dict(self.env)
        env.update({k: str(v) for k, v in (extra_env or {}).items()})
        log = open(self.log_dir / f"{svc}.log", "ab")
        log.write(f"--- start {svc} at {time.strftime('%H:%M:%S')} ---\n".encode())
        log.flush()
        if svc in self.logs:
            self.logs[svc].close()
        self.logs[svc] = log
        # CAREPASS_TEST_WRAP runs every service under a tool, e.g. valgrind memcheck:
        #   CAREPASS_TEST_WRAP='valgrind --error-exitcode=99 --log-file={log_dir}/valgrind-{svc}.%p.log'
        wrap = os.environ.get("CAREPASS_TEST_WRAP", "")
        argv = shlex.split(wrap.format(log_dir=self.log_dir, svc=svc)) if wrap else []
        self.procs[svc] = subprocess.Popen(argv + [str(binary)], env=env, cwd=str(self.dir),
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                           start_new_session=True)
        return self.procs[svc]

    def wait_healthy(self, svc, timeout=HEALTH_TIMEOUT_S):
        """Wait until <health dir>/<svc>.health exists (written by cp_service_heartbeat)."""
        path = self.health_dir / f"{svc}.health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs.get(svc)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{svc} exited with status {proc.returncode} during start-up:\n"
                                   + self.log_tail(svc))
            if path.exists():
                return
            time.sleep(0.05)
        raise TimeoutError(f"{svc} wrote no health file within {timeout} s:\n" + self.log_tail(svc))

    def pid(self, svc):
        return self.procs[svc].pid

    def running(self, svc):
        return svc in self.procs and self.procs[svc].poll() is None

    def kill(self, svc, sig=signal.SIGKILL):
        """Send a signal to a service ("redis" for redis-server); wait for it after SIGKILL."""
        proc = self.redis_proc if svc == "redis" else self.procs[svc]
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        if sig == signal.SIGKILL:
            proc.wait(timeout=10)

    def wait_exit(self, svc, timeout=STOP_TIMEOUT_S):
        """Wait for a service to exit; returns its status."""
        return self.procs[svc].wait(timeout=timeout)

    def restart(self, svc, sig=signal.SIGTERM, extra_env=None, wait=True):
        """Stop a service (sig, then SIGKILL after a timeout) and start it again."""
        if svc == "redis":
            self.restart_redis()
            return
        self._stop_proc(svc, sig)
        self.start_service(svc, extra_env)
        if wait:
            self.wait_healthy(svc)

    def _stop_proc(self, svc, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_S):
        proc = self.procs.get(svc)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                sys.stderr.write(f"harness: {svc} did not stop within {timeout} s; SIGKILL\n")
                proc.kill()
                proc.wait(timeout=5)
        return proc.returncode

    def stop(self, show_logs=False):
        """Stop every service (reverse start order), then Redis. Returns {svc: exit status}.
        With show_logs, print the tail of every log to stderr (used when a test failed)."""
        statuses = {}
        for sock in self._sockets.values():
            sock.close(linger=0)
        self._sockets.clear()
        order = [s for s in reversed(START_ORDER) if s in self.procs] + \
                [s for s in self.procs if s not in START_ORDER]
        for svc in order:
            statuses[svc] = self._stop_proc(svc)
        self.stop_redis()
        for log in self.logs.values():
            log.close()
        self.logs.clear()
        if show_logs:
            for svc in order + ["redis"]:
                sys.stderr.write(f"\n===== {svc} log (tail) =====\n{self.log_tail(svc)}\n")
        return statuses

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop(show_logs=exc_type is not None)

    def log_path(self, svc):
        return self.log_dir / f"{svc}.log"

    def log_text(self, svc):
        p = self.log_path(svc)
        return p.read_text(errors="replace") if p.exists() else ""

    def log_lines(self, svc):
        """The service's JSON log lines, parsed (non-JSON lines are skipped)."""
        out = []
        for line in self.log_text(svc).splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def log_tail(self, svc, n=40):
        return "\n".join(self.log_text(svc).splitlines()[-n:])

    # ---- clients ------------------------------------------------------------

    def redis(self):
        """A new RESP client connected to this system's Redis (close it, or use `with`)."""
        return Resp(self.redis_port)

    def intake_public_key(self):
        return read_curve_public(str(self.keys_dir / "intake.curve") + ".pub")

    def dealer(self, provider=DEFAULT_PROVIDER, key=None, server_key=None):
        """A new DEALER socket with CURVE, connected to intake. key is a key-pair file
        (default: the provider's own); the caller closes it."""
        pub, sec = read_curve_pair(key or self.provider_key_file(provider))
        s = self.zctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.curve_publickey = pub.encode()
        s.curve_secretkey = sec.encode()
        s.curve_serverkey = (server_key or self.intake_public_key()).encode()
        s.connect(self.intake_endpoint)
        return s

    def _socket(self, provider, key):
        ident = (provider, str(key))
        if ident not in self._sockets:
            self._sockets[ident] = self.dealer(provider, key)
        return self._sockets[ident]

    def raw_send(self, data, provider=DEFAULT_PROVIDER, key=None, timeout=10.0, frames=None):
        """Send raw bytes (one frame, or `frames` as a multipart message) to intake as
        `provider`; return the reply frame's bytes, or None if nothing came within timeout."""
        s = self.dealer(provider, key)
        try:
            if frames is not None:
                s.send_multipart(frames)
            else:
                s.send(data)
            if s.poll(int(timeout * 1000)):
                return s.recv()
            return None
        finally:
            s.close(linger=0)

    def submit(self, events, provider=DEFAULT_PROVIDER, ack="committed", key=None,
               timeout=40.0, request_id=None):
        """Send events (dicts of CompletionEvent fields, see to_pb_event) as one
        SubmitRequest; return the SubmitReply. ack: "accepted" / "committed" / an AckLevel.
        Raises TimeoutError when intake does not answer within timeout."""
        req = event_pb2.SubmitRequest()
        for e in events:
            req.events.append(e if isinstance(e, event_pb2.CompletionEvent) else to_pb_event(e))
        if isinstance(ack, str):
            ack = {"accepted": event_pb2.ACK_LEVEL_ACCEPTED,
                   "committed": event_pb2.ACK_LEVEL_COMMITTED}[ack]
        req.ack = ack
        self._req_seq += 1
        req.request_id = request_id or f"h{self._req_seq}"
        s = self._socket(provider, key)
        s.send(req.SerializeToString())
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not s.poll(int(left * 1000)):
                # a reply may still arrive later: drop the socket so it cannot be misread
                s.close(linger=0)
                self._sockets.pop((provider, str(key)), None)
                raise TimeoutError(f"no SubmitReply from intake within {timeout} s")
            rep = event_pb2.SubmitReply()
            rep.ParseFromString(s.recv())
            if rep.request_id == req.request_id:
                return rep

    def run_cli(self, args, check=False, input=None, env=None, timeout=120):
        """Run the carepass CLI with this system's environment; returns CompletedProcess
        (text mode). check=True raises with stdout/stderr on a non-zero exit."""
        e = dict(self.env)
        e.update({k: str(v) for k, v in (env or {}).items()})
        cp = subprocess.run([str(cli_binary(self.build_dir))] + [str(a) for a in args], env=e,
                            cwd=str(self.dir), input=input, capture_output=True, text=True,
                            timeout=timeout)
        if check and cp.returncode != 0:
            raise RuntimeError(f"carepass {' '.join(map(str, args))} exited {cp.returncode}\n"
                               f"stdout:\n{cp.stdout}\nstderr:\n{cp.stderr}")
        return cp

    def provider_token(self, provider=DEFAULT_PROVIDER, days=30):
        """A gateway API token (cpp_...) for a provider, made with `carepass provider-token`."""
        return self.run_cli(["provider-token", provider, "--days", days], check=True).stdout.strip()

    def wait_for(self, predicate, timeout=20.0, interval=0.05, what="condition"):
        """Poll predicate() until it is truthy (returned), or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            v = predicate()
            if v:
                return v
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached within {timeout} s")
            time.sleep(interval)
