"""Shared fixtures for the whole test suite.

`emulator`: a fresh, started local RunPod v2 emulator per test, with fast delays, stopped after.
Override its arguments for one test with a marker:

    @pytest.mark.emulator(paginate=2, ready_delay=1.0)
    def test_something(emulator): ...

Fast defaults: PROVISIONING 0.1 s -> STARTING 0.1 s -> RUNNING with runtime null 0.1 s -> runtime
present, services answer 200 0.2 s later (0.5 s after create); log lines every 0.02 s;
API key "test-key" (emulator.api_key); API at emulator.api_url, proxy template at
emulator.proxy_url (what the program reads from RUNPOD_PROXY_URL).
"""
from __future__ import annotations

import pytest

from runpod_emulator import Emulator  # importable: pytest.ini sets pythonpath = .

FAST_EMULATOR = dict(
    api_keys=("test-key",),
    provision_delay=0.1,
    start_delay=0.1,
    runtime_delay=0.1,
    ready_delay=0.2,
    log_interval=0.02,
    reset_lag=0.3,  # a start or container PATCH takes effect 0.3 s later (on, as live)
)


def pytest_configure(config):
    config.addinivalue_line("markers", "emulator(**kwargs): arguments for the `emulator` fixture's Emulator")


@pytest.fixture
def emulator(request):
    marker = request.node.get_closest_marker("emulator")
    emu = Emulator(**{**FAST_EMULATOR, **(marker.kwargs if marker else {})}).start()
    try:
        yield emu
    finally:
        emu.stop()
