"""Whether the kernel killed a process of this device for want of memory: the OOM-kill count of the
memory cgroup this process is in (cgroup v1 `memory.oom_control`, v2 `memory.events`); and how full
that cgroup is, which the worker reports in its heartbeats.

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
    group = _memory_cgroup(proc_cgroup, root)
    if group is None:
        return None
    directory, v1 = group
    return _read_counter(directory / ("memory.oom_control" if v1 else "memory.events"), "oom_kill")


def memory_in_use(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = CGROUP_ROOT) -> Optional[float]:
    """The fraction of this process's memory cgroup's cap that its processes' own memory takes (anonymous
    memory: the page cache, which fills a capped cgroup to its cap, is given back under pressure and does
    not count); None when the cgroup has no cap or cannot be read. Near 1 the kernel reclaims before every
    allocation, and the processes stall (the worker's heartbeats with them) before one is OOM-killed."""
    group = _memory_cgroup(proc_cgroup, root)
    if group is None:
        return None
    directory, v1 = group
    try:
        cap = (directory / ("memory.limit_in_bytes" if v1 else "memory.max")).read_text().strip()
        if not cap.isdigit() or int(cap) >= UNLIMITED_BYTES:
            return None  # v2 writes "max"; v1 a number near 2**63
        used = _read_counter(directory / "memory.stat", "total_rss" if v1 else "anon")
    except OSError:
        return None
    return None if used is None or int(cap) == 0 else used / int(cap)


UNLIMITED_BYTES = 2 ** 62
"""A cgroup v1 cap at least this large is no cap (the kernel's "unlimited" is 2**63 less a page)."""


def _memory_cgroup(proc_cgroup: Path, root: Path) -> Optional[tuple[Path, bool]]:
    """The directory of this process's memory cgroup, and whether it is of cgroup v1."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return root / "memory" / path.lstrip("/"), True
        if hierarchy == "0" and controllers == "":
            return root / path.lstrip("/"), False
    return None


def _read_counter(path: Path, key: str) -> Optional[int]:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return None
    return None
