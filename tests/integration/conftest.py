"""conftest.py -- pytest fixtures shared by every integration test (see harness.py)."""

import pytest

import api_contract
from harness import CarepassSystem
from webhook_receiver import WebhookReceiver


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the item so fixtures can tell whether the test failed."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def _failed(request):
    return any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False)
               for w in ("setup", "call"))


@pytest.fixture
def system(request, tmp_path):
    """A whole carepass system (Redis + bus, intake, verify, signer, notify) for one test.
    Customise with @pytest.mark.carepass(services=..., extra_env=..., providers=...,
    extra_providers=..., redis_persist=...). Logs are printed when the test fails."""
    marker = request.node.get_closest_marker("carepass")
    kwargs = dict(marker.kwargs) if marker else {}
    s = CarepassSystem(tmp_path, **kwargs)
    try:
        yield s
    finally:
        s.stop(show_logs=_failed(request))


@pytest.fixture
def receivers():
    """A factory of started WebhookReceivers (keyword arguments as WebhookReceiver's);
    every one made is stopped when the test ends."""
    made = []

    def make(**kw):
        rx = WebhookReceiver(**kw).start()
        made.append(rx)
        return rx
    yield make
    for rx in made:
        rx.stop()


def pytest_configure(config):
    api_contract.install()
    config.addinivalue_line("markers", "carepass(**kwargs): options for the `system` fixture "
                            "(CarepassSystem keyword arguments)")


def pytest_sessionfinish(session, exitstatus):
    """Every recorded gateway response checked against the OpenAPI document (api_contract.py);
    a response it does not describe fails the run."""
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.ensure_newline()
    bad = api_contract.check(lambda line: tr.write_line(line) if tr else print(line))
    if bad and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
