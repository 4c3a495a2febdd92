"""Shared test helpers, and the test tiers: a test's folder says what it needs, and marks it.

- tests/unit: this process only (plus the `edgetrain` command as a subprocess): no training processes.
- tests/distributed: real PyTorch shard processes and worker daemons (`-m distributed`).
- tests/mininet: root and Mininet, real emulated hosts (`-m mininet`).
`make test-fast` runs tests/unit; `make test` runs all three, and the import contract.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
TINY = str(TESTS / "data" / "tiny.yaml")
# Measured with `edgetrain calibrate --scenario tests/data/tiny.yaml --backend local` on this machine kind,
# so that the env and cost-model tests need no training processes.
TINY_CALIBRATION = str(TESTS / "data" / "tiny-calibration.json")

TIERS = {"distributed": pytest.mark.distributed, "mininet": pytest.mark.mininet}


def pytest_collection_modifyitems(items):
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in TIERS:
            item.add_marker(TIERS[tier])


def _mininet_missing():
    if os.geteuid() != 0:
        return "needs root (Mininet creates namespaces, links and cgroups)"
    if importlib.util.find_spec("mininet") is None:
        return "Mininet is not importable (run `make setup`)"
    return None


@pytest.fixture(scope="module", autouse=True)
def mininet_available(request):
    """tests/mininet needs root and Mininet: skipped without them, a failure under CI (where they must run).
    Module-scoped and autouse, so it runs before a module's testbed fixture would try to start one."""
    if Path(request.module.__file__).parent.name != "mininet":
        return
    reason = _mininet_missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"mininet tests cannot run under CI: {reason}")
        pytest.skip(reason)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real `edgetrain` command, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "edgetrain", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.fixture
def tiny_scenario_path() -> str:
    return TINY


def serve_on_a_free_port(worker, timeout_s: float = 10.0):
    """Start an in-process worker daemon on a port the system picks as it binds (a port probed free and
    bound later may be taken meanwhile); returns it with `listen` set to where it listens."""
    import threading
    listening = threading.Event()

    def ready(host, port):
        worker.listen = (host, port)
        listening.set()

    worker.listen = (worker.listen[0], 0)
    worker.on_listening = ready
    threading.Thread(target=worker.serve_forever, daemon=True).start()
    assert listening.wait(timeout_s), f"worker {worker.device} did not start listening"
    return worker
