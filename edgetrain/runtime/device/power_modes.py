"""Setting a device's power mode: on an emulated device, its CPU cgroup's CFS bandwidth.

A power mode (core/config.py `PowerMode`) runs a device at a fraction of its top mode's compute speed
for a fraction of its compute power. On a Jetson that is nvpmodel (fewer cores, lower clocks; not
supported yet: a worker there refuses a plan with a mode). On the testbed each device is a CPU cgroup
whose CFS quota over its period is its speed (emulation/network.py), so a mode of speed s is that share
times s, set by the device's own worker before a plan's first step and given back when the plan ends;
the shard's profile meter prices the mode's power (energy.PowerProfile.in_mode).

The emulator tells the worker its top bandwidth (`edgetrain worker --cpu-quota-us --cpu-period-us`): a
worker restarted while its device was in a lower mode (a device lost and back) would otherwise take the
lowered quota for its top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

CGROUP_ROOT = Path("/sys/fs/cgroup")
MIN_QUOTA_US = 1_000
"""CFS refuses a quota under 1 ms: a small share in a low mode lengthens the period instead (as Mininet
does for small shares), so the share still holds."""
MAX_PERIOD_US = 1_000_000


class CpuQuotaModes:
    """The power modes of a device that is a CPU cgroup with a CFS quota (cgroup v1 or v2)."""

    name = "cpu-quota"

    def __init__(self, directory: Path, v1: bool, top_quota_us: int, top_period_us: int):
        self.directory = directory
        self.v1 = v1
        self.top_quota_us = top_quota_us
        self.top_period_us = top_period_us
        self.speed = None
        """The speed last set (None: not set by this worker yet)."""

    @classmethod
    def check_top(cls, quota_us: int, period_us: int) -> None:
        """ValueError, in one sentence, for a top bandwidth CFS would not take."""
        if not MIN_QUOTA_US <= period_us <= MAX_PERIOD_US or quota_us < MIN_QUOTA_US:
            raise ValueError(f"a CPU quota of {quota_us} us per {period_us} us period is not one CFS takes "
                             f"(quota at least {MIN_QUOTA_US} us, period {MIN_QUOTA_US}-{MAX_PERIOD_US} us)")

    @classmethod
    def detect(cls, top_quota_us: Optional[int], top_period_us: Optional[int],
               proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = CGROUP_ROOT) -> Optional["CpuQuotaModes"]:
        """The modes of this process's CPU cgroup when the emulator gave its top bandwidth and the cgroup's
        bandwidth files can be written; None otherwise (a real device, or a testbed host without them)."""
        if not top_quota_us or not top_period_us:
            return None
        cls.check_top(top_quota_us, top_period_us)
        try:
            lines = proc_cgroup.read_text().splitlines()
        except OSError:
            return None
        found = None
        for line in lines:
            hierarchy, controllers, path = line.split(":", 2)
            if "cpu" in controllers.split(","):
                found = (root / "cpu" / path.lstrip("/"), True, path)
                break
            if hierarchy == "0" and controllers == "":
                found = (root / path.lstrip("/"), False, path)
        if found is None or found[2] in ("", "/"):
            return None  # the root cgroup has no quota to scale
        directory, v1, _ = found
        probe = directory / ("cpu.cfs_quota_us" if v1 else "cpu.max")
        if not probe.is_file():
            return None
        return cls(directory, v1, top_quota_us, top_period_us)

    def bandwidth(self, speed: float) -> tuple[int, int]:
        """(quota, period) in microseconds for `speed` of the top mode's share."""
        share = self.top_quota_us / self.top_period_us * speed
        quota = max(MIN_QUOTA_US, round(self.top_quota_us * speed))
        period = round(quota / share)
        if period > MAX_PERIOD_US:
            raise ValueError(f"a speed of {speed:g} is below what CFS can emulate for this device's share")
        return quota, period

    def set(self, speed: float) -> None:
        """Run the device at `speed` (a fraction in (0, 1]) of its top mode's compute speed."""
        if not 0 < speed <= 1:
            raise ValueError(f"a power mode's speed must be in (0, 1], not {speed:g}")
        if speed == self.speed:
            return
        quota, period = self.bandwidth(speed)
        self.speed = None  # until both writes are done: a half-done change is redone by the next set
        if self.v1:
            # The period first (the kernel checks each write on its own; any order is valid here).
            (self.directory / "cpu.cfs_period_us").write_text(str(period))
            (self.directory / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (self.directory / "cpu.max").write_text(f"{quota} {period}")
        self.speed = speed

    def reset(self) -> None:
        """Back to the top mode."""
        self.set(1.0)

    def read(self) -> tuple[int, int]:
        """The cgroup's (quota, period) now, in microseconds."""
        if self.v1:
            return (int((self.directory / "cpu.cfs_quota_us").read_text()),
                    int((self.directory / "cpu.cfs_period_us").read_text()))
        quota, period = (self.directory / "cpu.max").read_text().split()
        return (-1 if quota == "max" else int(quota)), int(period)
