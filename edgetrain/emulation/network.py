"""A scenario as a live Mininet network: one CPU-limited host per device behind a Linux bridge that
stands for the Wi-Fi access point (no controller), links shaped with htb, and one interface into the
root namespace so that the coordinator on this machine reaches the workers.

Everything created carries this network's own prefix (`et` + 4 hex digits): stopping it removes only
what it made, and `cleanup_leftovers` after a crash touches nothing of anyone else's.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

# Before importing mininet: it swaps the logger class for one that prints without newlines.
log = logging.getLogger("edgetrain.emulation")

from mininet.link import Link, TCLink  # noqa: E402
from mininet.log import setLogLevel  # noqa: E402
from mininet.net import Mininet  # noqa: E402
from mininet.node import CPULimitedHost, Node  # noqa: E402
from mininet.nodelib import LinuxBridge  # noqa: E402
from mininet.topo import Topo  # noqa: E402

from edgetrain.core.config import Scenario  # noqa: E402
from edgetrain.core.errors import UserError  # noqa: E402
from edgetrain.core.rules import TESTBED_CFS_PERIOD_US  # noqa: E402

PREFIX_PATTERN = re.compile(r"^et[0-9a-f]{4}[dsc]\d+")
MEMORY_CGROUPS = Path("/sys/fs/cgroup/memory")
CGROUP_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory")
# The CFS bandwidth period of each device's host: why 2 ms, in edgetrain.core.rules.
DEFAULT_CFS_PERIOD_US = TESTBED_CFS_PERIOD_US


def netem_available(prefix: str) -> bool:
    """Try a netem qdisc on a throwaway dummy interface: the only reliable test of the kernel."""
    dummy = f"{prefix}c9"
    subprocess.run(["ip", "link", "add", dummy, "type", "dummy"], capture_output=True)
    try:
        result = subprocess.run(["tc", "qdisc", "add", "dev", dummy, "root", "netem", "delay", "1ms"],
                                capture_output=True)
        return result.returncode == 0
    finally:
        subprocess.run(["ip", "link", "del", dummy], capture_output=True)


class EdgeTopo(Topo):
    """Pure graph: the access point, a host and a shaped link per device, and the root-namespace node."""

    def build(self, scenario: Scenario, prefix: str, emulate_delay: bool, cfs_period_us: int):
        access_point = self.addSwitch(f"{prefix}s0", cls=LinuxBridge)
        for index, device in enumerate(scenario.devices):
            host = self.addHost(f"{prefix}d{index}", cpu=device.cpu_share, period_us=cfs_period_us)
            shaping = {"bw": device.bandwidth_mbps}
            if emulate_delay and (device.delay_ms or device.loss_pct):
                shaping.update(delay=f"{device.delay_ms}ms", loss=device.loss_pct or None)
            self.addLink(host, access_point, cls=TCLink, **shaping)
        # The coordinator's side: the root namespace on an unshaped port of the access point.
        self.addHost(f"{prefix}c0", cls=Node, inNamespace=False)
        self.addLink(f"{prefix}c0", access_point, cls=Link)


@dataclass(frozen=True)
class DeviceHost:
    device: str
    host_name: str
    ip: str
    interface: str
    """The host's own interface (what gloo must bind to)."""
    switch_port: str
    """The access point's port for this device, in the root namespace: its counters are the device's."""


class EdgeNetwork:
    """Start with `start()`, always `stop()` (use it as a context manager)."""

    def __init__(self, scenario: Scenario, cfs_period_us: int = DEFAULT_CFS_PERIOD_US):
        self.scenario = scenario
        self.cfs_period_us = cfs_period_us
        self.prefix = f"et{secrets.token_hex(2)}"
        self.net: Optional[Mininet] = None
        self.hosts: dict[str, DeviceHost] = {}
        self.top_bandwidth: dict[str, Optional[tuple[int, int]]] = {}
        """Per device: its host's CPU (quota, period) as built, its top power mode's: a worker restarted
        while its device was in a lower mode is told these, not what the cgroup says then."""
        self.delay_emulated = False
        self.coordinator_ip = ""

    @property
    def wants_delay(self) -> bool:
        return any(d.delay_ms or d.loss_pct for d in self.scenario.devices)

    def start(self) -> "EdgeNetwork":
        if os.geteuid() != 0:
            raise PermissionError("the emulated testbed needs root (Mininet creates namespaces and cgroups)")
        setLogLevel("critical")  # htb "quantum is big" notices are not errors
        netem = netem_available(self.prefix)
        self.delay_emulated = netem and self.wants_delay
        if self.wants_delay and not netem:
            log.warning("this kernel has no netem: link delay and loss of scenario %s are NOT emulated "
                        "(recorded as delay_emulated: false)", self.scenario.name)
        subnet = self._free_subnet()
        topo = EdgeTopo(scenario=self.scenario, prefix=self.prefix, emulate_delay=self.delay_emulated,
                        cfs_period_us=self.cfs_period_us)
        self.net = Mininet(topo=topo, host=CPULimitedHost, link=TCLink, switch=LinuxBridge, controller=None,
                           ipBase=f"{subnet}.0.0/16", autoSetMacs=False, build=False, waitConnected=False)
        try:
            self.net.build()
            self.net.start()
            for index, device in enumerate(self.scenario.devices):
                host = self.net.get(f"{self.prefix}d{index}")
                intf = host.defaultIntf()
                switch_port = intf.link.intf2 if intf.link.intf1 is intf else intf.link.intf1
                self.hosts[device.name] = DeviceHost(device.name, host.name, host.IP(), intf.name, switch_port.name)
                if device.memory_mb:
                    self._limit_memory(host, device.memory_mb)
                self._expose_cpuacct(host)
                self.top_bandwidth[device.name] = self.cpu_bandwidth(device.name)
                if device.power_modes:
                    self._check_power_modes_settable(host, device.name)
            self.coordinator_ip = self.net.get(f"{self.prefix}c0").IP()
        except BaseException:
            self.stop()
            raise
        return self

    def _free_subnet(self) -> str:
        routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
        for _ in range(100):
            candidate = f"10.{secrets.randbelow(150) + 100}"
            if f"{candidate}." not in routes:
                return candidate
        raise RuntimeError("no free 10.x.0.0/16 subnet for the emulated network")

    @staticmethod
    def _expose_cpuacct(host) -> None:
        """Processes started in a host do not see the cgroup hierarchy; mount cpu, cpuacct and memory in
        the host's own mount namespace so that a shard can read its device's CPU time (runtime/device/cpu.py),
        its worker whether the kernel killed a shard for memory (runtime/device/oom.py) and set a plan's
        power mode (runtime/device/power_modes.py)."""
        # Each controller on its own: one that fails (the cpu one, newest) must not take the others with it.
        host.cmd("mount -t tmpfs edgetrain-cgroups /sys/fs/cgroup && mkdir -p /sys/fs/cgroup/cpu /sys/fs/cgroup/cpuacct "
                 "/sys/fs/cgroup/memory; mount -t cgroup -o cpuacct cgroup /sys/fs/cgroup/cpuacct; "
                 "mount -t cgroup -o memory cgroup /sys/fs/cgroup/memory; mount -t cgroup -o cpu cgroup /sys/fs/cgroup/cpu")

    def _check_power_modes_settable(self, host, device: str) -> None:
        """A device with power modes must find its CPU quota writable from inside its host (its worker
        sets a plan's mode there): refused here, in one sentence, rather than plan by plan later."""
        quota = f"/sys/fs/cgroup/cpu/{host.name}/cpu.cfs_quota_us"
        if self.top_bandwidth.get(device) is None or "writable" not in host.cmd(f"test -w {quota} && echo writable"):
            raise UserError(f"the testbed cannot set {device}'s power modes: its host sees no writable CPU quota "
                            f"({quota}; the cgroup v1 cpu controller is needed)")

    def _limit_memory(self, host, memory_mb: int) -> None:
        group = MEMORY_CGROUPS / host.name
        group.mkdir(exist_ok=True)
        (group / "memory.limit_in_bytes").write_text(str(memory_mb * 2 ** 20))
        (group / "cgroup.procs").write_text(str(host.pid))  # the host's shell; its children inherit

    def node(self, device: str):
        return self.net.get(self.hosts[device].host_name)

    def popen(self, device: str, argv: list[str], **kwargs) -> subprocess.Popen:
        """A process inside the device's host: its namespace, its CPU cgroup and its memory cgroup.
        Mininet's popen joins only the CPU cgroups (`mnexec -g`), so the process is moved into the host's
        memory cgroup at once, before it has imported anything or started children (which inherit it):
        without this a device's memory cap held only for the host's shell, not for its worker."""
        process = self.node(device).popen(argv, **kwargs)
        if self.scenario.device(device).memory_mb:
            try:
                (MEMORY_CGROUPS / self.hosts[device].host_name / "cgroup.procs").write_text(str(process.pid))
            except OSError:  # it has already exited
                pass
        return process

    def set_link(self, device: str, up: bool) -> None:
        self.net.configLinkStatus(self.hosts[device].host_name, f"{self.prefix}s0", "up" if up else "down")

    def cpu_seconds(self, device: str) -> float:
        """All CPU time of the device's host so far (its cgroup's cpuacct)."""
        usage = Path("/sys/fs/cgroup/cpuacct") / self.hosts[device].host_name / "cpuacct.usage"
        return int(usage.read_text()) / 1e9

    def cpu_bandwidth(self, device: str) -> Optional[tuple[int, int]]:
        """(quota, period) in microseconds of the device's host now (its worker scales them for a lower
        power mode: runtime/device/power_modes.py); None where they cannot be read (no cgroup v1 cpu)."""
        group = Path("/sys/fs/cgroup/cpu") / self.hosts[device].host_name
        try:
            return int((group / "cpu.cfs_quota_us").read_text()), int((group / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            return None

    def traffic_bytes(self, device: str) -> tuple[int, int]:
        """(sent, received) by the device, read on the access point's port (its rx is the device's tx)."""
        stats = Path("/sys/class/net") / self.hosts[device].switch_port / "statistics"
        return int((stats / "rx_bytes").read_text()), int((stats / "tx_bytes").read_text())

    def stop(self) -> None:
        if self.net is not None:
            net, self.net = self.net, None
            try:
                net.stop()
            finally:
                # Mininet deletes `cpu,cpuacct,cpuset:/host` in one go, which leaves the cpuacct and cpuset
                # groups behind when those controllers are mounted apart (as here): remove each one.
                for info in self.hosts.values():
                    for controller in CGROUP_CONTROLLERS:
                        _remove_cgroup(Path("/sys/fs/cgroup") / controller / info.host_name)

    def __enter__(self) -> "EdgeNetwork":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _remove_cgroup(path: Path, timeout_s: float = 10.0) -> Optional[str]:
    """Kill what runs in the cgroup, wait until it has left, remove the cgroup. None when it is gone,
    else why not. (A killed process leaves its cgroup only once it has exited: removing the cgroup at
    once fails with EBUSY, which a first version took for success.)"""
    deadline = time.monotonic() + timeout_s
    why = "its processes did not exit"
    while True:
        try:
            pids = [int(pid) for pid in (path / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"its processes cannot be read ({exc.strerror})"
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not pids:
            try:
                path.rmdir()
                return None
            except FileNotFoundError:
                return None
            except OSError as exc:
                why = exc.strerror
        if time.monotonic() > deadline:
            return f"still in use after {timeout_s:.0f} s ({why}; processes {', '.join(map(str, pids)) or 'none'})"
        time.sleep(0.05)


def cleanup_leftovers() -> tuple[list[str], list[str]]:
    """Remove interfaces, bridges and cgroups a crashed edgetrain network left behind (ours only).
    Returns what was removed and, truthfully, what could not be, with why."""
    removed, failed = [], []
    for intf in sorted(os.listdir("/sys/class/net")):
        if PREFIX_PATTERN.match(intf):
            result = subprocess.run(["ip", "link", "del", intf], capture_output=True, text=True)
            if result.returncode == 0 or not Path("/sys/class/net", intf).exists():
                removed.append(f"interface {intf}")
            else:
                failed.append(f"interface {intf}: {result.stderr.strip() or 'ip link del failed'}")
    for controller in CGROUP_CONTROLLERS:
        root = Path("/sys/fs/cgroup") / controller
        if root.is_dir():
            for group in sorted(root.iterdir()):
                if group.is_dir() and PREFIX_PATTERN.match(group.name):
                    why = _remove_cgroup(group)
                    if why is None:
                        removed.append(f"cgroup {controller}:/{group.name}")
                    else:
                        failed.append(f"cgroup {controller}:/{group.name}: {why}")
    return removed, failed
