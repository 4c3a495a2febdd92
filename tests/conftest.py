"""Shared test helpers, and the test tiers: a test's folder says what it needs, and marks it.

- tests/unit: this process only (plus the `edgetrain` command as a subprocess): no training processes.
- tests/distributed: real PyTorch shard processes and worker daemons (`-m distributed`).
- tests/mininet: root and Mininet, real emulated hosts (`-m mininet`).
`make test-fast` runs tests/unit; `make test` runs all three, and the import contract.
"""

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


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real `edgetrain` command, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "edgetrain", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.fixture
def tiny_scenario_path() -> str:
    return TINY
