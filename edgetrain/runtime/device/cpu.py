"""CPU time of a device: its cgroup's when it has one of its own (an emulated host), else this process's.

In emulation every device is a cgroup (Mininet's CPULimitedHost), and what the device spends is all of
its processes' time; on a real device, or with the local backend, the shard's own CPU time is it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

CGROUP_V1_CPUACCT = Path("/sys/fs/cgroup/cpuacct")


def own_cpuacct_file(proc_cgroup: Path = Path("/proc/self/cgroup"),
                     root: Path = CGROUP_V1_CPUACCT) -> Optional[Path]:
    """cpuacct.usage of the cgroup v1 this process is in, unless that is the root cgroup."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(",") and path not in ("", "/"):
            usage = root / path.lstrip("/") / "cpuacct.usage"
            return usage if usage.exists() else None
    return None


class CpuClock:
    def __init__(self):
        self._usage_file = own_cpuacct_file()
        self.source = "cgroup" if self._usage_file else "process"

    def seconds(self) -> float:
        if self._usage_file is not None:
            try:
                return int(self._usage_file.read_text()) / 1e9
            except (OSError, ValueError):
                pass
        return time.process_time()
