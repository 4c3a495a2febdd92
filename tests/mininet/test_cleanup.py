"""A testbed killed the hard way, or told to stop: what it leaves behind, and `edgetrain emulate clean`.
(This module runs before test_emulation's shared testbed exists: cleaning removes every edgetrain
network on the machine, and must find only the one it is meant for.)"""

import os
import re
import signal
import subprocess
import sys
import time

import psutil

from conftest import REPO, TINY

PREFIX_PATTERN = re.compile(r"^et[0-9a-f]{4}[dsc]\d+")


def leftovers() -> list[str]:
    found = [i for i in os.listdir("/sys/class/net") if PREFIX_PATTERN.match(i)]
    for controller in ("cpu", "cpuacct", "cpuset", "memory"):
        root = f"/sys/fs/cgroup/{controller}"
        if os.path.isdir(root):
            found += [f"{controller}:{g}" for g in os.listdir(root) if PREFIX_PATTERN.match(g)]
    return found


def start_testbed(tmp_path) -> subprocess.Popen:
    """`edgetrain emulate up` on the tiny scenario, once it says the testbed is up."""
    process = subprocess.Popen([sys.executable, "-m", "edgetrain", "emulate", "up", "--scenario", TINY,
                                "--run-dir", str(tmp_path / "testbed")], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    deadline = time.monotonic() + 180
    for line in process.stdout:
        if "Ctrl-C brings the testbed down" in line:
            return process
        assert time.monotonic() < deadline, "the testbed did not come up"
    raise AssertionError(f"emulate up ended with code {process.wait()} before the testbed was up")


def test_after_kill_9_one_clean_removes_everything_and_says_what_it_removed(tmp_path):
    """Before: the first pass reported the cgroups removed while their processes kept them in use (they
    had only been sent SIGKILL), and a second pass was needed."""
    assert leftovers() == [], "an edgetrain network was already up: clean would remove it"
    process = start_testbed(tmp_path)
    workers = [p for p in psutil.process_iter(["cmdline"]) if "worker" in (p.info["cmdline"] or [])
               and "edgetrain" in (p.info["cmdline"] or [])]
    assert len(workers) == 3
    os.kill(process.pid, signal.SIGKILL)  # no finally runs: interfaces, cgroups and workers stay
    process.wait()
    assert leftovers()
    cleaned = subprocess.run([sys.executable, "-m", "edgetrain", "emulate", "clean"], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert cleaned.returncode == 0, cleaned.stderr
    assert leftovers() == []  # one pass
    assert "removed cgroup" in cleaned.stdout and "could not remove" not in cleaned.stderr
    time.sleep(0.5)
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    again = subprocess.run([sys.executable, "-m", "edgetrain", "emulate", "clean"], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.strip() == "nothing left behind"


def test_sigterm_brings_the_testbed_down_and_leaves_nothing(tmp_path):
    assert leftovers() == []
    process = start_testbed(tmp_path)
    assert leftovers()
    os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=60)  # it ends, through the finally blocks that stop the network
    assert leftovers() == []
    assert not [p for p in psutil.process_iter(["cmdline"]) if "worker" in (p.info["cmdline"] or [])
                and "edgetrain" in (p.info["cmdline"] or [])]
