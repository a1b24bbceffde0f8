"""test_browser.py -- the employer web page (GET /, the form posting to POST /check, rendered on
the server) in headless Chromium against a running system: a valid code shows the passport, a
wrong date of birth and a withdrawn code show the same plain error, a revoked record shows as
revoked with its reason (never as genuine), the bundle downloads, and the browser console stays
free of errors (the page's Content-Security-Policy included). Driven with python3-selenium +
Debian's chromium-driver; skipped cleanly when Chromium is not installed. Every state of the page
with axe-core, 320 px reflow, no JavaScript and the keyboard: test_check_page.py.

Set CAREPASS_BROWSER_SCREENSHOT=<path.png> to keep a screenshot of the result page."""

import datetime
import http.client
import json
import os
import shutil
import tempfile

import pytest

from harness import CarepassSystem, event

webdriver = pytest.importorskip("selenium.webdriver", reason="python3-selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="chromium and chromium-driver are not installed")

SERVICES = ("bus", "intake", "verify", "signer", "notify", "gateway")
NI, DOB = "JK123456B", "1988-07-09"
WAIT_S = 15


def day(offset):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)).isoformat()


def api(s, method, path, body=None, token=None):
    c = http.client.HTTPConnection("127.0.0.1", s.gateway_port, timeout=30)
    try:
        h = {"Content-Type": "application/json"}
        if token:
            h["Authorization"] = f"Bearer {token}"
        c.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=h)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    s = CarepassSystem(tmp_path_factory.mktemp("browser"), services=SERVICES,
                       extra_env={"CAREPASS_ACK_TIMEOUT_MS": 15000})
    try:
        rep = s.submit([event("br-1", ni_number=NI, completion_date=day(-60)),
                        event("br-2", ni_number=NI, qualification_code="RF-SAFEG", completion_date=day(-30))])
        s.idx = {r.provider_event_id: r.entry_index for r in rep.replies}
        assert all(r.outcome == s.pb.OUTCOME_COMMITTED for r in rep.replies)
        rev = s.submit([event("br-1-rev", ni_number=NI, completion_date=day(-60), kind="revocation",
                              revokes_event_id="br-1", revocation_reason="ISSUED_IN_ERROR")]).replies[0]
        assert rev.outcome == s.pb.OUTCOME_COMMITTED, rev.message
        s.token = s.run_cli(["worker-token", NI], check=True).stdout.strip()
        yield s
    finally:
        s.stop(show_logs=True)


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="carepass-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1100,1400", f"--user-data-dir={profile}"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER) if hasattr(webdriver, "ChromeService") \
        else webdriver.chrome.service.Service(executable_path=CHROMEDRIVER)
    d = webdriver.Chrome(options=opts, service=service)
    d.set_page_load_timeout(WAIT_S)
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(d):
    """SEVERE console entries, except Chromium's own network line for the 400/404 the page expects
    (a share code that does not match): that one is an answer, not a script error."""
    return [e for e in d.get_log("browser") if e.get("level") == "SEVERE"
            and not (e.get("source") == "network" and "/check" in e.get("message", "")
                     and ("404" in e.get("message", "") or "400" in e.get("message", "")))]


def fill_and_submit(s, d, code, dob, employer="Oak Tree Care Home"):
    d.get(s.gateway_url + "/")
    WebDriverWait(d, WAIT_S).until(EC.presence_of_element_located((By.ID, "share-code")))
    y, m, dd = dob.split("-")
    d.find_element(By.ID, "share-code").send_keys(code)
    d.find_element(By.ID, "dob-day").send_keys(str(int(dd)))
    d.find_element(By.ID, "dob-month").send_keys(str(int(m)))
    d.find_element(By.ID, "dob-year").send_keys(y)
    d.find_element(By.ID, "employer").send_keys(employer)
    d.find_element(By.ID, "check-button").click()


def wait_result_or_error(d):
    WebDriverWait(d, WAIT_S).until(lambda x: x.find_elements(By.ID, "result") or x.find_elements(By.ID, "error-summary"))


def test_page_headers(system):
    c = http.client.HTTPConnection("127.0.0.1", system.gateway_port, timeout=10)
    c.request("GET", "/")
    r = c.getresponse()
    body = r.read()
    assert r.status == 200 and b"<h1>Check a care worker&#39;s skills passport</h1>" in body
    assert b'<form method="post" action="/check"' in body
    csp = r.getheader("Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    c.request("GET", "/static/app.js")
    r = c.getresponse()
    r.read()
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/javascript")
    c.request("GET", "/static/index.html")   # the layout is not served on its own
    r = c.getresponse()
    r.read()
    assert r.status == 404
    c.request("GET", "/static/../gw_page.c")
    r = c.getresponse()
    r.read()
    assert r.status in (400, 404)
    c.close()


def test_valid_code_shows_passport_and_revoked_record(system, browser, tmp_path):
    st, code = api(system, "POST", "/v1/share-codes", {"date_of_birth": DOB}, token=system.token)
    assert st == 201
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    fill_and_submit(system, browser, code["code"], DOB)
    wait_result_or_error(browser)
    assert browser.find_elements(By.ID, "result"), browser.find_element(By.ID, "error-summary").text
    records = browser.find_elements(By.CSS_SELECTOR, "#result .record")
    by_index = {int(r.get_attribute("data-index")): r for r in records}
    assert set(by_index) == {system.idx["br-1"], system.idx["br-2"]}
    revoked = by_index[system.idx["br-1"]]
    assert revoked.get_attribute("data-status") == "revoked"
    assert "issued in error" in revoked.text and "Revoked" in revoked.text and "genuine" not in revoked.text
    valid = by_index[system.idx["br-2"]]
    assert valid.get_attribute("data-status") == "valid" and "Safeguarding adults" in valid.text
    # how it was checked is folded under the record
    valid.find_element(By.CSS_SELECTOR, "summary").click()
    assert "Signed with the register's key: yes" in valid.text
    overall = browser.find_element(By.ID, "verdict-panel").text
    assert "1 valid" in overall and "2 revoked" not in overall and "1 revoked" in overall
    shot = os.environ.get("CAREPASS_BROWSER_SCREENSHOT")
    if shot:
        browser.save_screenshot(shot)
    # the bundle downloads (posted again: the code never goes into a URL)
    browser.find_element(By.ID, "download-button").click()
    WebDriverWait(browser, WAIT_S).until(lambda x: any(p.suffix == ".carepass" for p in tmp_path.iterdir()))
    bundle = next(p for p in tmp_path.iterdir() if p.suffix == ".carepass")
    assert bundle.read_bytes().startswith(b"carepass-passport/")
    assert console_errors(browser) == []
    # the worker sees who looked
    st, views = api(system, "GET", "/v1/views", token=system.token)
    assert views["views"][0]["employer"] == "Oak Tree Care Home"


def test_wrong_date_of_birth(system, browser):
    st, code = api(system, "POST", "/v1/share-codes", {"date_of_birth": DOB}, token=system.token)
    fill_and_submit(system, browser, code["code"], "1988-07-10")
    wait_result_or_error(browser)
    err = browser.find_element(By.ID, "error-summary")
    assert err.is_displayed() and "No passport matches that share code and date of birth" in err.text
    assert not browser.find_elements(By.ID, "result")
    # an impossible date is refused by the server's own checks, linked to the field
    fill_and_submit(system, browser, code["code"], "1988-02-31")
    wait_result_or_error(browser)
    assert "real date" in browser.find_element(By.ID, "error-summary").text
    assert browser.find_element(By.ID, "dob-day").get_attribute("aria-invalid") == "true"
    assert console_errors(browser) == []


def test_withdrawn_code(system, browser):
    st, code = api(system, "POST", "/v1/share-codes", {"date_of_birth": DOB}, token=system.token)
    st, _ = api(system, "DELETE", f"/v1/share-codes/{code['id']}", token=system.token)
    assert st == 200
    fill_and_submit(system, browser, code["code"], DOB)
    wait_result_or_error(browser)
    err = browser.find_element(By.ID, "error-summary")
    assert err.is_displayed() and "No passport matches" in err.text
    assert console_errors(browser) == []
