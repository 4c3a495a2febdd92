"""The live emulated testbed: the network, a worker daemon in every host, device availability over
time and battery drain. Starts the worker as a command (`edgetrain worker ...`): emulation knows
nothing of the runtime's code, only how to run it, exactly as a user does on a real device.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional


from edgetrain.core.availability import availability_events, hour_of_day, within_hours
from edgetrain.core.catalog import get_profile
from edgetrain.core.config import Scenario
from edgetrain.core.power import in_power_mode, profile_energy_j
from edgetrain.core.rules import BATTERY_CUTOFF_PCT, BATTERY_RETURN_PCT
from edgetrain.core.secrets import write_secret
from edgetrain.emulation.network import EdgeNetwork

log = logging.getLogger("edgetrain.emulation")
WORKER_PORT = 7077
MODE_SPEED_TOLERANCE = 0.03
"""A host's CPU share within this fraction of a mode's speed is in that mode (the worker rounds the
quota and period to whole microseconds, and a small share's period was lengthened to keep 1 ms)."""
# Scenario time covered by sampled availability traces.
TRACE_HORIZON_S = 7 * 24 * 3600.0


class Testbed:
    """Use as a context manager: the network and every process in it always come down."""

    def __init__(self, scenario: Scenario, workdir: Path, token: str, *, time_scale: float = 1.0, seed: int = 0,
                 follow_availability: bool = True, python: str = sys.executable, busy_devices: tuple = ()):
        unknown = sorted(set(busy_devices) - set(scenario.device_names))
        if unknown:
            raise ValueError(f"busy device {unknown[0]!r} is not a device of {scenario.name}")
        self.scenario = scenario
        self.busy_devices = tuple(busy_devices)
        """Devices busy with work of their own: a CPU-bound process runs in the host beside the worker for
        as long as the device is online, taking its share of the device's CPU quota (a device slower live
        than its calibration: what online recalibration and fine-tuning must notice)."""
        self._busy: dict[str, object] = {}
        self.workdir = Path(workdir)
        self.token = token
        self.time_scale = time_scale
        self.seed = seed
        self.follow_availability = follow_availability
        self.python = python
        self.network = EdgeNetwork(scenario)
        self.online = {d.name: True for d in scenario.devices}
        self.battery_pct = {d.name: d.battery_initial_pct for d in scenario.devices if d.battery_wh}
        self.trace_online = {d.name: True for d in scenario.devices}  # what the availability trace says now
        self._ran_flat: dict[str, bool] = {}
        self.listeners: list[Callable[[str, bool], None]] = []
        self._workers: dict[str, object] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._previous_sigterm = None
        self.started_at = 0.0

    # --- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> "Testbed":
        if threading.current_thread() is threading.main_thread():
            # SIGTERM unwinds like Ctrl-C, through every `finally` that stops the network.
            self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.token_file = self.workdir / "worker.token"
        self.token_file.unlink(missing_ok=True)  # a previous run's: a new secret in a new file of mode 0600
        write_secret(self.token_file, self.token)
        self.network.start()
        self.started_at = time.monotonic()
        for device in self.scenario.devices:
            self._write_battery(device.name)
            self._start_worker(device.name)
        self.wait_for_workers([d.name for d in self.scenario.devices])
        if self.follow_availability:
            self._spawn(self._follow_availability, "availability")
        if self.battery_pct:
            self._spawn(self._drain_batteries, "batteries")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        # Under the lock: a device going on- or offline right now (the availability follower, which may
        # outlive the join) finishes first, and none starts after (set_online checks `_stop`). Mininet
        # talks to each node through one shell; the follower's link change and the network's teardown
        # on the same shell at once could each read the other's reply and wait for ever.
        with self._lock:
            try:
                for device in list(self.network.hosts):
                    self._kill_processes(device)
            finally:
                self.network.stop()
                if self._previous_sigterm is not None:
                    signal.signal(signal.SIGTERM, self._previous_sigterm)
                    self._previous_sigterm = None

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # --- workers ---------------------------------------------------------------------------------
    def worker_address(self, device: str) -> tuple[str, int]:
        return self.network.hosts[device].ip, WORKER_PORT

    def socket_ifname(self, device: str) -> str:
        return self.network.hosts[device].interface

    def cores(self, device: str) -> float:
        """CPU capacity of the emulated device, in cores (Mininet's share is of the whole machine)."""
        return self.scenario.device(device).cpu_share * (os.cpu_count() or 1)

    def _start_worker(self, device: str) -> None:
        host = self.network.hosts[device]
        argv = [self.python, "-m", "edgetrain", "worker", "--listen", f"{host.ip}:{WORKER_PORT}",
                "--token-file", str(self.token_file), "--device", device, "--socket-ifname", host.interface,
                "--log-dir", str(self.workdir / "logs"), "--workdir", str(self.workdir / "devices" / device)]
        top = self.network.top_bandwidth.get(device)
        if top is not None and top[0] > 0:  # the worker sets a plan's power mode by scaling its host's CPU quota
            argv += ["--cpu-quota-us", str(top[0]), "--cpu-period-us", str(top[1])]
        if device in self.battery_pct:
            argv += ["--battery-file", str(self._battery_file(device))]
        (self.workdir / "logs").mkdir(exist_ok=True)
        with open(self.workdir / "logs" / f"worker-{device}.log", "a") as out:
            self._workers[device] = self.network.popen(device, argv, stdout=out, stderr=out)
        if device in self.busy_devices:  # the competing work comes and goes with the device
            self._busy[device] = self.network.popen(device, ["sh", "-c", "while :; do :; done"],
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_for_workers(self, devices: list[str], timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        for device in devices:
            while True:
                try:
                    socket.create_connection(self.worker_address(device), timeout=1.0).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the worker of {device} did not come up within {timeout_s:.0f} s; "
                                           f"see {self.workdir / 'logs'}") from None
                    time.sleep(0.2)

    def _kill_processes(self, device: str) -> None:
        """Every process of the device (worker, shards) but the host's own shell."""
        host = self.network.node(device)
        procs = Path("/sys/fs/cgroup/cpu") / host.name / "cgroup.procs"
        try:
            pids = [int(p) for p in procs.read_text().split()]
        except OSError:
            return
        for pid in pids:
            if pid != host.pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        busy = self._busy.pop(device, None)
        if busy is not None:
            if busy.poll() is None:
                busy.kill()
            busy.wait()
        worker = self._workers.pop(device, None)
        if worker is not None:
            # A worker started a moment ago may not have joined its host's cgroup yet when the list above
            # was read: kill it by its own handle too, or the wait below would never return.
            if worker.poll() is None:
                worker.kill()
            worker.wait()

    def kill_worker(self, device: str) -> None:
        """A crash of the device's software (fault injection): the device stays on the network."""
        with self._lock:
            log.warning("fault injected: killing the worker of %s", device)
            self._kill_processes(device)

    def restart_worker(self, device: str) -> None:
        with self._lock:
            if not self._stop.is_set():
                self._start_worker(device)

    def set_online(self, device: str, online: bool, battery_pct: Optional[float] = None) -> None:
        """Offline: the link is cut and the worker's processes stop. Online: both come back.
        `battery_pct`: the charge that takes it offline, published together with the change."""
        with self._lock:
            if self.online[device] == online or self._stop.is_set():
                return
            self.online[device] = online
            if battery_pct is not None:
                self.battery_pct[device] = battery_pct
            if online:
                self.network.set_link(device, True)
                self._start_worker(device)
            else:
                self.network.set_link(device, False)
                self._kill_processes(device)
        log.info("%s is now %s", device, "online" if online else "offline")
        for listener in self.listeners:
            listener(device, online)

    # --- availability and batteries --------------------------------------------------------------
    def scenario_time(self) -> float:
        return (time.monotonic() - self.started_at) * self.time_scale

    def _follow_availability(self) -> None:
        for t, device, online in availability_events(self.scenario, self.seed, TRACE_HORIZON_S):
            while not self._stop.is_set() and self.scenario_time() < t:
                self._stop.wait(min(0.2, (t - self.scenario_time()) / self.time_scale + 0.001))
            if self._stop.is_set():
                return
            self.trace_online[device] = online
            if online and device in self.battery_pct and self.battery_pct[device] < BATTERY_RETURN_PCT \
                    and self._ran_flat.get(device):
                continue  # a flat battery keeps the device off until a charger brings it back
            self.set_online(device, online)

    def _battery_file(self, device: str) -> Path:
        return self.workdir / f"battery-{device}.json"

    def _write_battery(self, device: str) -> None:
        if device in self.battery_pct:
            self._battery_file(device).write_text(json.dumps({"percent": self.battery_pct[device]}))

    def _drain_batteries(self, tick_s: float = 1.0) -> None:
        """Each device's battery pays for the energy its host spends: profile power over the host's
        cgroup CPU time and its link's bytes. Below the cutoff the device goes offline. While plugged in
        (`charging_hours`, in scenario time) it gains `charge_w` over real seconds, online or not, and a
        device that ran flat comes back at BATTERY_RETURN_PCT if its availability has it online."""
        last = {d: (time.monotonic(), self.network.cpu_seconds(d), *self.network.traffic_bytes(d))
                for d in self.battery_pct}
        while not self._stop.wait(tick_s):
            for device in list(self.battery_pct):
                config = self.scenario.device(device)
                now, cpu = time.monotonic(), self.network.cpu_seconds(device)
                sent, recv = self.network.traffic_bytes(device)
                t0, cpu0, sent0, recv0 = last[device]
                last[device] = (now, cpu, sent, recv)
                capacity_j = config.battery_wh * 3600
                hour = hour_of_day(self.scenario.start_hour, self.scenario_time())
                joules = -config.charge_w * (now - t0) if within_hours(config.charging_hours, hour) else 0.0
                if self.online[device]:
                    profile = get_profile(config.profile)
                    idle_w = profile.idle_power_w.value
                    speed, power = self.power_mode_now(device)
                    active_w, cores = in_power_mode(idle_w=idle_w, active_w=profile.active_power_w.value,
                                                    cores=self.cores(device), speed=speed, power=power)
                    joules += profile_energy_j(
                        idle_w=idle_w, active_w=active_w, tx_j_per_byte=profile.radio_tx_j_per_byte.value,
                        rx_j_per_byte=profile.radio_rx_j_per_byte.value, cores=cores,
                        wall_s=now - t0, cpu_s=cpu - cpu0, bytes_sent=sent - sent0, bytes_recv=recv - recv0)
                if not joules:
                    continue
                charge = min(100.0, max(0.0, self.battery_pct[device] - 100 * joules / capacity_j))
                if self.online[device] and charge < BATTERY_CUTOFF_PCT:
                    # Offline with the reading that crosses the cutoff, not after it: whoever reads the
                    # charge never sees a device online below the cutoff (the link cut and the processes'
                    # end take a while longer).
                    log.warning("%s: battery at %.1f%%, going offline", device, charge)
                    self._ran_flat[device] = True
                    self.set_online(device, False, battery_pct=charge)
                    self.battery_pct[device] = charge  # also when it had just gone offline otherwise
                    self._write_battery(device)
                    continue
                self.battery_pct[device] = charge
                self._write_battery(device)
                if self._ran_flat.get(device) and self.battery_pct[device] >= BATTERY_RETURN_PCT:
                    self._ran_flat[device] = False
                    if self.trace_online[device]:
                        log.info("%s: charged to %.1f%%, back online", device, self.battery_pct[device])
                        self.set_online(device, True)

    def power_mode_now(self, device: str) -> tuple[float, float]:
        """(speed, power) of the power mode the device's worker has set, as fractions of its top mode's
        compute speed and compute power above idle: the speed is its host's CPU share now against the one
        it was built with, the power that of the scenario's mode of that speed (the battery pays for
        the mode the device computes in, as its profile meter prices it)."""
        top, now = self.network.top_bandwidth.get(device), self.network.cpu_bandwidth(device)
        if not top or not now or top[0] <= 0 or now[0] <= 0:
            return 1.0, 1.0
        speed = (now[0] / now[1]) / (top[0] / top[1])
        if speed > 1 - MODE_SPEED_TOLERANCE:
            return 1.0, 1.0
        modes = self.scenario.device(device).power_modes
        closest = min(modes, key=lambda m: abs(m.speed - speed), default=None)
        if closest is None or abs(closest.speed - speed) > MODE_SPEED_TOLERANCE:
            return speed, 1.0  # not one of its modes (set by hand?): its compute power unchanged
        return closest.speed, closest.power

    def facts(self) -> dict:
        """What the emulation really did, for every result file."""
        return {
            "delay_emulated": self.network.delay_emulated,
            "emulation": {
                "backend": "mininet",
                "delay_requested": self.network.wants_delay,
                "cfs_period_us": self.network.cfs_period_us,
                "busy_devices": list(self.busy_devices),
                "devices": {d.name: {"cpu_share": d.cpu_share, "cores": self.cores(d.name),
                                     "bandwidth_mbps": d.bandwidth_mbps, "delay_ms": d.delay_ms,
                                     "memory_mb": d.memory_mb} for d in self.scenario.devices},
            },
        }


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt
