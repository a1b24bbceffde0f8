"""test_compose.py -- the container deployment end to end with podman and podman-compose.

Makes the base image if it is missing (deploy/podman/make-base-image.sh), builds
the carepass image, starts docker-compose.yml under a unique project name, waits
until every container is healthy, submits the sample events from inside the
intake container with the sample provider keys from the keys volume, checks that
events are committed, that `carepass passport` works inside the signer container
and that the verify and notify replicas run. Then the gateway, over its port
published on 127.0.0.1 only: /healthz, a signed /log/checkpoint covering the
committed events, /v1/vkey equal to the register's vkey, /v1/webhook-key equal
to the key every notify replica signs with, and POST /v1/events with a provider
token made inside the gateway container committing one more event, which then
shows in that worker's passport. Then it takes everything down again.

Registered by tests/CMakeLists.txt only with -DCAREPASS_PODMAN_TEST=ON. Skips when
podman or podman-compose is missing or CAREPASS_SKIP_PODMAN=1.

Environment:
  CAREPASS_SKIP_PODMAN=1        skip
  CAREPASS_COMPOSE_KEEP_IMAGE=1 keep the built image (faster reruns)
  CAREPASS_COMPOSE_KEEP=1       leave the project running for debugging
Step timings are printed on stderr and written to
$CAREPASS_BUILD_DIR/compose-timings.txt.
"""
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import nacl.signing
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from register_check import parse_vkey  # noqa: E402  (an independent note-vkey reader)

SRC = os.environ.get("CAREPASS_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.environ.get("CAREPASS_BUILD_DIR", "")
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"

# Bounds for every wait (seconds).
BASE_IMAGE_TIMEOUT = 900
IMAGE_BUILD_TIMEOUT = 1500
COMPOSE_UP_TIMEOUT = 300
HEALTHY_TIMEOUT = 180
NOT_RUNNING_GRACE = 20
SUBMIT_TIMEOUT = 180
COMMAND_TIMEOUT = 120

# What docker-compose.yml starts: service -> replicas.
EXPECTED = {"redis": 1, "bus": 1, "signer": 1, "verify": 2, "intake": 1, "gateway": 1, "notify": 2}

# One NI number of the sample data (fictional) whose events are all valid.
SAMPLE_WORKER = "AB123456C"

# The event the test sends over HTTP: a fictional worker not in the sample data.
GATEWAY_WORKER = "AB654321C"
GATEWAY_EVENT = {
    "provider_event_id": "compose-gw-1", "provider_id": "PRV-0001", "ni_number": GATEWAY_WORKER,
    "qualification_code": "CC-STD-01", "completion_date": "2025-05-06", "assessor_id": "ASR-0001-017",
    "evidence_hash": "", "kind": "completion", "revokes_event_id": "", "revocation_reason": "",
}
HTTP_TIMEOUT = 60


def _skip_reason():
    if os.environ.get("CAREPASS_SKIP_PODMAN") == "1":
        return "CAREPASS_SKIP_PODMAN=1"
    for tool in ("podman", "podman-compose"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (deploy/install-deps.sh --podman)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


class Timings:
    """Step durations, printed at the end whatever happens."""

    def __init__(self):
        self.steps = []  # (name, seconds)

    def step(self, name):
        timings = self

        class _Step:
            def __enter__(self):
                self.t0 = time.monotonic()
                return self

            def __exit__(self, *exc):
                timings.steps.append((name, time.monotonic() - self.t0))
                return False

        return _Step()

    def report(self):
        lines = [f"compose-test {name:<28} {secs:7.1f} s" for name, secs in self.steps]
        text = "\n".join(lines) + "\n"
        sys.__stderr__.write(text)
        if BUILD_DIR and os.path.isdir(BUILD_DIR):
            with open(os.path.join(BUILD_DIR, "compose-timings.txt"), "w") as f:
                f.write(text)


def _env():
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", os.path.join(SRC, "deploy", "podman", "containers.conf"))
    # podman's CNI plugins look up iptables on PATH; without sbin a container
    # stays "created" and podman-compose does not say so.
    path = env.get("PATH", "").split(":")
    env["PATH"] = ":".join(path + [d for d in ("/usr/sbin", "/sbin") if d not in path])
    return env


def run(args, timeout=COMMAND_TIMEOUT, check=True, env=None, input_text=None):
    """Run a command with a bound; on failure the assertion shows its output."""
    try:
        p = subprocess.run(args, cwd=SRC, env=env or _env(), input=input_text, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"timed out after {timeout}s: {' '.join(args)}\n{e.stdout}\n{e.stderr}")
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}: {' '.join(args)}\nstdout:\n{p.stdout[-4000:]}\n"
                             f"stderr:\n{p.stderr[-4000:]}")
    return p


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Project:
    """One podman-compose project and everything it creates."""

    def __init__(self, image):
        self.name = "cptest" + uuid.uuid4().hex[:8]
        self.image = image
        self.env = _env()
        self.env["CAREPASS_IMAGE"] = image
        self.env["CAREPASS_INTAKE_PUBLISH"] = f"127.0.0.1:{_free_port()}"
        self.gateway_port = _free_port()
        self.env["CAREPASS_GATEWAY_PUBLISH"] = f"127.0.0.1:{self.gateway_port}"
        self.env["CAREPASS_SAMPLE_PROVIDER_KEYS"] = "1"
        self.up_errors = ""  # error lines `podman-compose up` printed

    def compose(self, *args, timeout=COMPOSE_UP_TIMEOUT, check=True):
        return run(["podman-compose", "-p", self.name, "-f", os.path.join(SRC, "docker-compose.yml"), *args],
                   timeout=timeout, check=check, env=self.env)

    def containers(self, service=None, all_states=False):
        """[(name, state)] of this project's containers, optionally of one service."""
        args = ["podman", "ps", "--format", "json", "--filter", f"label=io.podman.compose.project={self.name}"]
        if all_states:
            args.insert(2, "-a")
        if service:
            args += ["--filter", f"label=com.docker.compose.service={service}"]
        out = run(args, env=self.env).stdout.strip() or "[]"
        return [(c["Names"][0], c["State"]) for c in json.loads(out)]

    def name_of(self, service, num=1):
        return f"{self.name}_{service}_{num}"

    def exec(self, service, *cmd, user="carepass", timeout=COMMAND_TIMEOUT, check=True):
        return run(["podman", "exec", "--user", user, self.name_of(service), *cmd], timeout=timeout, check=check,
                   env=self.env)

    def logs(self):
        out = []
        for name, state in self.containers(all_states=True):
            p = run(["podman", "logs", "--tail", "30", name], check=False, env=self.env)
            out.append(f"--- {name} ({state})\n{p.stdout}{p.stderr}")
        return "\n".join(out)

    def down(self):
        """podman-compose down -v, then whatever it leaves (1.0.3 keeps the network)."""
        self.compose("down", "-v", timeout=COMPOSE_UP_TIMEOUT, check=False)
        label = f"label=io.podman.compose.project={self.name}"
        left = run(["podman", "ps", "-aq", "--filter", label], check=False, env=self.env).stdout.split()
        if left:
            run(["podman", "rm", "-f", "-t", "2", *left], check=False, env=self.env)
        vols = run(["podman", "volume", "ls", "-q", "--filter", label], check=False, env=self.env).stdout.split()
        if vols:
            run(["podman", "volume", "rm", "-f", *vols], check=False, env=self.env)
        run(["podman", "network", "rm", "-f", f"{self.name}_default"], check=False, env=self.env)


def _wait_healthy(project, deadline):
    """Run every container's health check until all pass (podman without systemd has no timer)."""
    expected_names = {project.name_of(s, n) for s, k in EXPECTED.items() for n in range(1, k + 1)}
    last = {}
    not_running_since = {}  # container -> when it was first seen not running
    while time.monotonic() < deadline:
        states = dict(project.containers(all_states=True))
        missing = expected_names - set(states)
        now = time.monotonic()
        for n, s in states.items():
            if s == "running":
                not_running_since.pop(n, None)
            else:
                not_running_since.setdefault(n, now)
        # `up -d` has started them all; a restart is short, anything longer is a failure.
        dead = {n: states[n] for n, t in not_running_since.items() if now - t > NOT_RUNNING_GRACE}
        if dead:
            raise AssertionError(f"containers not running: {dead}\n{project.logs()}\n"
                                 f"podman-compose up errors:\n{project.up_errors}")
        if not missing:
            for name in sorted(expected_names):
                p = run(["podman", "healthcheck", "run", name], check=False, env=project.env)
                last[name] = (p.stdout + p.stderr).strip() or "healthy"
                if p.returncode != 0:
                    break
            else:
                return
        time.sleep(2)
    raise AssertionError(f"not all healthy within {HEALTHY_TIMEOUT}s: {last}\n{project.logs()}")


# No proxy from the environment: the gateway is on this host's loopback.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(port, method, path, body=None, headers=None):
    """(status, headers, body bytes) of one request to 127.0.0.1:port; HTTP errors are answers too."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                                 headers=headers or {})
    try:
        with _HTTP.open(req, timeout=HTTP_TIMEOUT) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def parse_checkpoint(note, vkey_text):
    """(origin, size) of a signed checkpoint note, after checking its signature with vkey_text."""
    name, key_id, pk = parse_vkey(vkey_text)
    body, sep, sigs = note.partition(b"\n\n")
    assert sep, f"checkpoint is not a signed note: {note!r}"
    lines = body.decode().split("\n")
    assert len(lines) >= 3, f"checkpoint body: {body!r}"
    verified = False
    for line in sigs.decode().splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "\u2014" or parts[1] != name:
            continue
        raw = base64.b64decode(parts[2])
        if raw[:4] == key_id:
            nacl.signing.VerifyKey(pk).verify(body + b"\n", raw[4:])  # raises if forged
            verified = True
    assert verified, f"no signature by {name} on the checkpoint: {note!r}"
    return lines[0], int(lines[1])


def _check_gateway(project, timings, committed):
    """The gateway over its published loopback port: health, the register, keys, provider events."""
    port = project.gateway_port
    with timings.step("gateway read routes"):
        status, _, body = http(port, "GET", "/healthz")
        assert status == 200, f"/healthz: {status} {body!r}\n{project.logs()}"
        assert json.loads(body)["status"] == "ok", body

        status, _, vkey = http(port, "GET", "/v1/vkey")
        assert status == 200, f"/v1/vkey: {status} {vkey!r}"
        reg_vkey = project.exec("gateway", "cat", "/var/lib/carepass/register/vkey").stdout
        assert vkey.decode().strip() == reg_vkey.strip(), (vkey, reg_vkey)

        status, _, note = http(port, "GET", "/log/checkpoint")
        assert status == 200, f"/log/checkpoint: {status} {note!r}"
        origin, size = parse_checkpoint(note, vkey.decode())
        assert origin == parse_vkey(vkey.decode())[0], (origin, vkey)
        # Entry 0 is the genesis KEY entry; then one entry per committed event.
        assert size >= len(committed) + 1, f"checkpoint size {size} < {len(committed)} committed + 1"

        # Every notify replica signs with the one key the gateway publishes.
        status, _, whpk = http(port, "GET", "/v1/webhook-key")
        assert status == 200, f"/v1/webhook-key: {status} {whpk!r}"
        for name, _ in project.containers("notify"):
            keys = [rec.get("key") for rec in _log_records(project, name) if rec.get("msg") == "webhook public key"]
            assert keys and keys[-1] == whpk.decode().strip(), f"{name} signs with {keys}, gateway has {whpk!r}"

        # The gateway mounts the register read-only.
        p = project.exec("gateway", "touch", "/var/lib/carepass/register/x", check=False)
        assert p.returncode != 0, "the register is writable in the gateway container"

    with timings.step("gateway POST /v1/events"):
        token = project.exec("gateway", "carepass", "provider-token", "PRV-0001").stdout.strip()
        assert token.startswith("cpp_"), token
        batch = json.dumps([GATEWAY_EVENT]).encode()
        status, _, body = http(port, "POST", "/v1/events?ack=committed", batch,
                               {"Content-Type": "application/json"})
        assert status == 401, f"POST without a token: {status} {body!r}"
        status, _, body = http(port, "POST", "/v1/events?ack=committed", batch,
                               {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        assert status == 200, f"POST /v1/events: {status} {body!r}\n{project.logs()}"
        answer = json.loads(body)
        reply = answer["replies"][0]
        assert reply["provider_event_id"] == GATEWAY_EVENT["provider_event_id"], answer
        assert reply["outcome"] == "committed", answer
        assert answer["committed"] == 1, answer
        assert reply["entry_index"] >= size, (reply, size)

        # The new entry is in the next checkpoint the gateway serves.
        status, _, note = http(port, "GET", "/log/checkpoint")
        assert status == 200, note
        _, new_size = parse_checkpoint(note, vkey.decode())
        assert new_size > reply["entry_index"], (new_size, reply)

        # The gateway's pseudonym secret is the one the CLI (and intake) use: the
        # worker's passport, read from the register, holds the event.
        p = project.exec("signer", "carepass", "passport", GATEWAY_WORKER, check=False)
        assert p.returncode == 0 and GATEWAY_EVENT["qualification_code"] in p.stdout, \
            f"passport of the gateway's worker: exit {p.returncode}\n{p.stdout}\n{p.stderr}"


def _log_records(project, name):
    """The JSON log lines of one container, as dicts."""
    p = run(["podman", "logs", name], check=False, env=project.env)
    out = []
    for line in (p.stdout + p.stderr).splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _sample_providers():
    with open(os.path.join(SRC, "data", "providers.json")) as f:
        return [p["id"] for p in json.load(f)["providers"]]


def _expected_outcomes():
    """provider_event_id -> (outcome, reason code) from data/sample-events.expected.tsv."""
    out = {}
    with open(os.path.join(SRC, "data", "sample-events.expected.tsv")) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if line.startswith("#") or len(fields) < 3:
                continue
            out[fields[0]] = (fields[1], fields[2])
    return out


def _check_substitutions():
    """podman-compose 1.0.3 leaves `${X:-}` (empty default) in place as literal text, which the
    services then refuse as configuration: an unset variable must be written `${X}`."""
    with open(os.path.join(SRC, "docker-compose.yml")) as f:
        bad = [f"line {n}: {line.strip()}" for n, line in enumerate(f, 1)
               if re.search(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-\}", line)]
    assert not bad, "empty defaults podman-compose does not substitute:\n" + "\n".join(bad)


def test_compose_deployment():
    _check_substitutions()
    timings = Timings()
    keep_image = os.environ.get("CAREPASS_COMPOSE_KEEP_IMAGE") == "1"
    image = "localhost/carepass:compose-test" if keep_image else f"localhost/carepass:test-{uuid.uuid4().hex[:8]}"
    project = None
    built = False
    try:
        with timings.step("base image (debootstrap)"):
            if run(["podman", "image", "exists", BASE_IMAGE], check=False).returncode != 0:
                if os.geteuid() != 0 or shutil.which("debootstrap") is None:
                    pytest.skip(f"{BASE_IMAGE} is missing and cannot be made here (needs root and debootstrap)")
                run(["bash", os.path.join(SRC, "deploy", "podman", "make-base-image.sh")], timeout=BASE_IMAGE_TIMEOUT)

        with timings.step("image build"):
            run(["podman", "build", "--network", "host", "--isolation", "chroot", "--layers=" + str(keep_image).lower(),
                 "-f", os.path.join(SRC, "deploy", "Dockerfile"), "-t", image, SRC], timeout=IMAGE_BUILD_TIMEOUT)
            built = True

        project = Project(image)
        with timings.step("compose up"):
            up = project.compose("up", "-d")
            # podman-compose 1.0.3 exits 0 even when a `podman run` failed: keep its
            # errors for the report if a container does not come up.
            project.up_errors = "\n".join(line for line in (up.stdout + up.stderr).splitlines()
                                          if "rror" in line)[-4000:]
        with timings.step("wait healthy"):
            _wait_healthy(project, time.monotonic() + HEALTHY_TIMEOUT)

        # The replicas run: verify and notify each have two containers running.
        for service in ("verify", "notify"):
            running = [n for n, s in project.containers(service) if s == "running"]
            assert len(running) == EXPECTED[service], f"{service}: {running}"

        # Submit the sample events, each provider's with its own key (intake admits
        # a provider only by its key, and rejects events naming another provider).
        outcomes = {}
        with timings.step("submit sample events"):
            for pid in _sample_providers():
                key = f"/var/lib/carepass/keys/providers/{pid}.curve"
                script = (f'grep -F \'"provider_id": "{pid}"\' /opt/carepass/data/sample-events.ndjson > /tmp/{pid}.ndjson'
                          f' || exit 0; exec carepass submit /tmp/{pid}.ndjson --provider-key {key} --ack committed'
                          f' --timeout 60')
                p = project.exec("intake", "bash", "-c", script, timeout=SUBMIT_TIMEOUT, check=False)
                assert p.returncode == 0, f"submit for {pid}: exit {p.returncode}\n{p.stdout}\n{p.stderr}\n" \
                                          f"{project.logs()}"
                for line in p.stdout.splitlines():
                    fields = line.split("\t")
                    if len(fields) >= 3 and re.match(r"^[A-Za-z0-9._:-]+$", fields[0]):
                        outcomes[fields[0]] = (fields[1], fields[2])
        committed = [e for e, (o, _) in outcomes.items() if o == "committed"]
        assert committed, f"no event committed: {outcomes}\n{project.logs()}"
        # Each sample event ends as data/sample-events.expected.tsv says.
        wrong = {e: (outcomes.get(e), want) for e, want in _expected_outcomes().items()
                 if e in outcomes and outcomes[e] != want}
        assert not wrong, f"outcomes differ from sample-events.expected.tsv (got, expected): {wrong}"

        # Redis keeps its state on the volume with an fsynced append-only file.
        p = project.exec("redis", "redis-cli", "config", "get", "appendonly", user="redis")
        assert p.stdout.split() == ["appendonly", "yes"], p.stdout

        _check_gateway(project, timings, committed)

        # The passport, read from the register volume inside the signer container.
        with timings.step("passport"):
            p = project.exec("signer", "carepass", "passport", SAMPLE_WORKER, check=False)
            assert p.returncode == 0, f"passport: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
            assert "CC-STD-01" in p.stdout, p.stdout

        # No personal data in any service log.
        with timings.step("log check"):
            for name, _ in project.containers():
                p = run(["podman", "logs", name], check=False, env=project.env)
                for ni in (SAMPLE_WORKER, GATEWAY_WORKER):
                    assert ni not in p.stdout + p.stderr, f"NI number in the log of {name}"

        if os.environ.get("CAREPASS_COMPOSE_KEEP") != "1":
            with timings.step("compose down"):
                project.down()
            label = f"label=io.podman.compose.project={project.name}"
            assert not run(["podman", "ps", "-aq", "--filter", label]).stdout.split(), "containers left behind"
            assert not run(["podman", "volume", "ls", "-q", "--filter", label]).stdout.split(), "volumes left behind"
            project = None
    finally:
        if project is not None and os.environ.get("CAREPASS_COMPOSE_KEEP") != "1":
            project.down()
        if built and not keep_image:
            run(["podman", "rmi", "-f", image], check=False)
        timings.report()
