"""Whether the kernel killed a process of this device for want of memory: the OOM-kill count of the
memory cgroup this process is in (cgroup v1 `memory.oom_control`, v2 `memory.events`).

A shard killed this way dies by SIGKILL like one killed by hand; the count going up while it ran is
what tells the two apart, so that the coordinator can say "out of memory" and plan around the device.
On the testbed each host with a memory cap is a memory cgroup of its own (emulation/network.py mounts
the hierarchy inside the host); on a real device it is whatever cgroup the worker runs in (systemd's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

CGROUP_ROOT = Path("/sys/fs/cgroup")


def oom_kill_count(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = CGROUP_ROOT) -> Optional[int]:
    """How many processes the kernel has OOM-killed in this process's memory cgroup; None when unknown."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return _read_counter(root / "memory" / path.lstrip("/") / "memory.oom_control")
        if hierarchy == "0" and controllers == "":
            return _read_counter(root / path.lstrip("/") / "memory.events")
    return None


def _read_counter(path: Path) -> Optional[int]:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None
