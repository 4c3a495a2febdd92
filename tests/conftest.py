import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
TINY = str(TESTS / "data" / "tiny.yaml")


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real `edgetrain` command, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "edgetrain.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.fixture
def tiny_scenario_path() -> str:
    return TINY
