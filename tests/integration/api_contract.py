"""api_contract.py -- every HTTP exchange an integration test has with a gateway, checked against the
OpenAPI 3.1 document (services/gateway/web/openapi.json) by an independent validator.

The harness names the ports its gateways listen on (watch_port). While a pytest run goes, every
request made through http.client (which urllib uses too) to a watched port is recorded with its
response: method, path, status, content type and body. When the run ends (conftest.py,
pytest_sessionfinish) the exchanges go to tests/integration/openapi_check.mjs, which validates the
document itself (@seriousme/openapi-schema-validator) and each response against the operation it
belongs to (ajv, JSON Schema 2020-12), both pinned in tests/package-lock.json. A response the
document does not describe fails the run: an undocumented route, status, content type or field
shape. Requests to paths no route serves must get the documented error body (404/405).

CAREPASS_API_CONTRACT=0 turns the check off (for a run against a deliberately broken gateway,
say); CAREPASS_API_CONTRACT_KEEP=<file> keeps the recorded exchanges as JSON lines."""

import base64
import http.client
import io
import json
import os
import shutil
import subprocess
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CAREPASS_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
DOCUMENT = os.path.join(SOURCE, "services", "gateway", "web", "openapi.json")
CHECKER = os.path.join(HERE, "openapi_check.mjs")
NODE_MODULES = os.path.join(SOURCE, "tests", "node_modules")
MAX_BODY = 4 << 20   # bodies beyond this are recorded as truncated and checked by status only

_lock = threading.Lock()
_ports = {}   # port -> listener ("api": the public port, "operator": /metrics and /healthz)
_exchanges = []
_installed = False


def enabled():
    return os.environ.get("CAREPASS_API_CONTRACT", "1") != "0"


def watch_port(port, listener="api"):
    """Record the exchanges with 127.0.0.1:<port>, a gateway's public ("api") or operator listener."""
    with _lock:
        _ports[int(port)] = listener


def _record(conn, resp, body):
    req = getattr(conn, "_cp_request", None)
    if req is None:
        return
    method, path, listener = req
    ctype = resp.getheader("Content-Type", "") or ""
    entry = {"method": method, "path": path.split("?", 1)[0], "status": resp.status, "content_type": ctype,
             "listener": listener}
    if len(body) > MAX_BODY:
        entry["truncated"] = True
    elif ctype.split(";")[0].strip().endswith("json"):
        try:
            entry["json"] = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, ValueError):
            entry["body_b64"] = base64.b64encode(body).decode()
    with _lock:
        _exchanges.append(entry)


def install():
    """Wrap http.client so that exchanges with watched ports are recorded (once per process)."""
    global _installed
    if _installed or not enabled():
        return
    _installed = True
    orig_request = http.client.HTTPConnection.request
    orig_getresponse = http.client.HTTPConnection.getresponse

    def request(self, method, url, *args, **kwargs):
        listener = _ports.get(int(self.port or 80)) if self.host in ("127.0.0.1", "localhost") else None
        self._cp_request = (method, url, listener) if listener else None
        return orig_request(self, method, url, *args, **kwargs)

    def getresponse(self, *args, **kwargs):
        resp = orig_getresponse(self, *args, **kwargs)
        if getattr(self, "_cp_request", None) is None:
            return resp
        # read the whole body now and hand the caller the same bytes afterwards
        try:
            body = resp.read()
        except (http.client.HTTPException, OSError):
            return resp
        resp.fp = io.BufferedReader(io.BytesIO(body))
        resp.length = len(body)
        resp.chunked = False
        _record(self, resp, body)
        self._cp_request = None
        return resp

    http.client.HTTPConnection.request = request
    http.client.HTTPConnection.getresponse = getresponse


def check(report):
    """Validate what was recorded; report(line) prints. Returns the number of violations (0 when
    nothing was recorded, or the check is off)."""
    if not enabled() or not _exchanges:
        return 0
    keep = os.environ.get("CAREPASS_API_CONTRACT_KEEP")
    node = shutil.which("node")
    if node is None or not os.path.isdir(os.path.join(NODE_MODULES, "ajv")):
        report("api contract: node or tests/node_modules missing (run deploy/install-deps.sh); "
               f"{len(_exchanges)} exchanges not checked")
        return 1
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for e in _exchanges:
            f.write(json.dumps(e) + "\n")
        path = f.name
    try:
        if keep:
            shutil.copyfile(path, keep)
        r = subprocess.run([node, CHECKER, DOCUMENT, path], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "NODE_PATH": NODE_MODULES})
    finally:
        os.unlink(path)
    for line in (r.stdout + r.stderr).splitlines():
        report(line)
    return 0 if r.returncode == 0 else max(1, r.stdout.count("\nFAIL") + r.stdout.startswith("FAIL"))
