"""Energy meters behind one interface. Every figure says which meter produced it.

- `profile`: the device's power profile applied to what was measured: wall time, CPU time and bytes.
  The only meter in emulation (and with the local backend, where several emulated devices share one
  machine and a hardware counter could not tell them apart).
- `rapl`: Linux powercap (Intel/AMD RAPL) package energy counters, on a real x86 device.
- `nvml`: NVIDIA GPU energy counters through pynvml, alone or added to RAPL when both exist.
- `jetson-rails`: the INA3221 power monitors of Jetson boards (board input rail), sampled and integrated.
- `zeus:...`: Zeus's ZeusMonitor (the field's reference meter: NVIDIA GPUs, RAPL CPU packages and DRAM,
  Jetson boards), preferred to the readers above wherever the `zeus` package is installed
  (`pip install 'edgetrain[zeus]'`) and finds a sensor; the name lists what it covers.

Hardware meters measure what their sensor covers (RAPL: the CPU package and DRAM, not the radio); the
meter's name travels with the figure so nobody mistakes one for another.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from edgetrain.core.power import in_power_mode, profile_energy_j


@dataclass(frozen=True)
class Usage:
    """What a device did during one interval."""

    wall_s: float
    cpu_s: float
    bytes_sent: int
    bytes_recv: int


@dataclass(frozen=True)
class PowerProfile:
    """The numbers a profile meter needs (from the device profile catalog)."""

    idle_w: float
    active_w: float
    tx_j_per_byte: float
    rx_j_per_byte: float
    cores: float
    """CPU capacity of the device in cores: CPU seconds per wall second at full load."""

    @classmethod
    def from_catalog(cls, profile_name: str, cores: float) -> "PowerProfile":
        from edgetrain.core.catalog import get_profile
        p = get_profile(profile_name)
        return cls(p.idle_power_w.value, p.active_power_w.value, p.radio_tx_j_per_byte.value,
                   p.radio_rx_j_per_byte.value, cores)

    def in_mode(self, speed: float, power: float) -> "PowerProfile":
        """The profile of the device in a lower power mode (core.power.in_power_mode)."""
        active_w, cores = in_power_mode(idle_w=self.idle_w, active_w=self.active_w, cores=self.cores,
                                        speed=speed, power=power)
        return replace(self, active_w=active_w, cores=cores)

    def energy(self, usage: Usage) -> float:
        return profile_energy_j(idle_w=self.idle_w, active_w=self.active_w, tx_j_per_byte=self.tx_j_per_byte,
                                rx_j_per_byte=self.rx_j_per_byte, cores=self.cores, wall_s=usage.wall_s,
                                cpu_s=usage.cpu_s, bytes_sent=usage.bytes_sent, bytes_recv=usage.bytes_recv)


class EnergyMeter(ABC):
    name: str

    @abstractmethod
    def measure(self, usage: Usage) -> float:
        """Joules used since the previous call (or since the meter was made)."""

    def close(self) -> None:
        pass


class ProfileMeter(EnergyMeter):
    name = "profile"

    def __init__(self, profile: PowerProfile):
        self.profile = profile

    def measure(self, usage: Usage) -> float:
        return self.profile.energy(usage)


class RaplMeter(EnergyMeter):
    """Sum of the top-level powercap zones (one per CPU package); counters wrap at max_energy_range_uj."""

    name = "rapl"

    def __init__(self, zones: list[Path]):
        self.zones = zones
        self.ranges = [int((z / "max_energy_range_uj").read_text()) for z in zones]
        self.last = [self._read(z) for z in zones]

    @staticmethod
    def _read(zone: Path) -> int:
        return int((zone / "energy_uj").read_text())

    @classmethod
    def detect(cls, sysfs: Path) -> Optional["RaplMeter"]:
        root = sysfs / "class" / "powercap"
        zones = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
        try:
            return cls(zones) if zones else None
        except (OSError, ValueError):
            return None  # present but unreadable (not root, or a VM without counters)

    def measure(self, usage: Usage) -> float:
        total_uj = 0
        for i, zone in enumerate(self.zones):
            now = self._read(zone)
            total_uj += (now - self.last[i]) % (self.ranges[i] + 1)
            self.last[i] = now
        return total_uj / 1e6


class NvmlMeter(EnergyMeter):
    """Total energy counters of every NVIDIA GPU (Volta and newer)."""

    name = "nvml"

    def __init__(self, nvml, handles):
        self.nvml = nvml
        self.handles = handles
        self.last = [nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in handles]

    @classmethod
    def detect(cls) -> Optional["NvmlMeter"]:
        try:
            import pynvml
            pynvml.nvmlInit()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            return cls(pynvml, handles) if handles else None
        except Exception:  # no library, no driver, no GPU, or counters unsupported
            return None

    def measure(self, usage: Usage) -> float:
        now = [self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles]
        joules = sum(n - last for n, last in zip(now, self.last)) / 1e3  # millijoules
        self.last = now
        return joules


class SumMeter(EnergyMeter):
    def __init__(self, meters: list[EnergyMeter]):
        self.meters = meters
        self.name = "+".join(m.name for m in meters)

    def measure(self, usage: Usage) -> float:
        return sum(m.measure(usage) for m in self.meters)

    def close(self) -> None:
        for meter in self.meters:
            meter.close()


class JetsonRailMeter(EnergyMeter):
    """INA3221 hwmon channels: power = voltage (mV) x current (mA). Uses the board input rail (label
    VDD_IN) when the board has one, else the sum of all rails; sampled in a thread and integrated."""

    name = "jetson-rails"

    def __init__(self, channels: list[tuple[Path, Path]], interval_s: float = 0.05):
        self.channels = channels
        self.interval_s = interval_s
        self._joules = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last_power = self._power()
        self._last_time = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="jetson-rails", daemon=True)
        self._thread.start()

    @classmethod
    def detect(cls, sysfs: Path) -> Optional["JetsonRailMeter"]:
        channels, board_input = [], []
        for hwmon in sorted((sysfs / "class" / "hwmon").glob("hwmon*")):
            try:
                if "ina3221" not in (hwmon / "name").read_text():
                    continue
            except OSError:
                continue
            for volt in sorted(hwmon.glob("in*_input")):
                index = volt.name[2:-len("_input")]
                curr = hwmon / f"curr{index}_input"
                if not curr.exists():
                    continue
                label_file = hwmon / f"in{index}_label"
                label = label_file.read_text().strip() if label_file.exists() else ""
                (board_input if label == "VDD_IN" else channels).append((volt, curr))
        chosen = board_input or channels
        return cls(chosen) if chosen else None

    def _power(self) -> float:
        watts = 0.0
        for volt, curr in self.channels:
            try:
                watts += int(volt.read_text()) * int(curr.read_text()) / 1e6
            except (OSError, ValueError):
                pass
        return watts

    def _sample(self) -> None:
        power, now = self._power(), time.monotonic()
        with self._lock:
            self._joules += 0.5 * (power + self._last_power) * (now - self._last_time)
            self._last_power, self._last_time = power, now

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def measure(self, usage: Usage) -> float:
        self._sample()
        with self._lock:
            joules, self._joules = self._joules, 0.0
        return joules

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)


class ZeusMeter(EnergyMeter):
    """Zeus's ZeusMonitor over one measurement window per interval: `measure` closes the window and opens
    the next. A Jetson board's total (its input rail, GPU included) stands alone; elsewhere the GPUs, the
    CPU packages and their DRAM are summed."""

    WINDOW = "edgetrain-interval"

    def __init__(self, monitor):
        self.monitor = monitor
        covers = [f"gpu{i}" for i in monitor.gpu_indices] + [f"cpu{i}" for i in monitor.cpu_indices]
        self.name = "zeus:" + ",".join(covers + (["soc"] if monitor.soc_is_present else []))
        monitor.begin_window(self.WINDOW)

    @classmethod
    def detect(cls) -> Optional["ZeusMeter"]:
        try:
            from zeus.monitor import ZeusMonitor
        except ImportError:
            return None  # not installed: the readers below measure the same counters
        try:
            # Steps can be shorter than NVML's counter update period (a zero reading): Zeus then
            # multiplies the GPU's power now by the window's time.
            monitor = ZeusMonitor(approx_instant_energy=True)
        except Exception:  # a driver or counter Zeus could not open: the readers below may still
            return None
        if not (monitor.gpu_indices or monitor.cpu_indices or monitor.soc_is_present):
            return None
        return cls(monitor)

    def measure(self, usage: Usage) -> float:
        window = self.monitor.end_window(self.WINDOW)
        self.monitor.begin_window(self.WINDOW)
        board_mj = getattr(window.soc_energy, "total_energy_mj", None)
        if board_mj is not None:
            return board_mj / 1e3
        return (sum(window.gpu_energy.values()) + sum((window.cpu_energy or {}).values())
                + sum((window.dram_energy or {}).values()))

    def close(self) -> None:
        self.monitor.end_window(self.WINDOW, sync_execution=False, cancel=True)


def hardware_meter(sysfs: Path = Path("/sys")) -> Optional[EnergyMeter]:
    """The hardware meter of this machine, None when it has none: Zeus's monitor where it is installed
    (it reads the machine's own /sys, so only when `sysfs` is that); else the Jetson board's input rail
    (it covers the whole board, GPU included); else every meter present of RAPL (CPU package) and NVML
    (NVIDIA GPUs), summed (NVML alone counts: a host with a GPU and no RAPL counters). Zeus is consulted
    only where edgetrain's own readers find a sensor: it reads the same ones, and importing it takes 1 s
    of CPU (measured here), which every worker of the testbed's emulated devices (no sensor) paid at
    start under its CPU share (the suite took 5 minutes longer)."""
    own = _own_hardware_meter(sysfs)
    if own is None:
        return None
    zeus = ZeusMeter.detect() if sysfs == Path("/sys") else None
    if zeus is None:
        return own
    own.close()
    return zeus


def _own_hardware_meter(sysfs: Path) -> Optional[EnergyMeter]:
    jetson = JetsonRailMeter.detect(sysfs)
    if jetson is not None:
        return jetson
    present = [meter for meter in (RaplMeter.detect(sysfs), NvmlMeter.detect()) if meter is not None]
    if len(present) == 1:
        return present[0]
    return SumMeter(present) if present else None


def select_meter(profile: PowerProfile, use_hardware: bool, sysfs: Path = Path("/sys")) -> EnergyMeter:
    """The hardware meter when asked for one and the machine has one; else the profile meter."""
    meter = hardware_meter(sysfs) if use_hardware else None
    return meter if meter is not None else ProfileMeter(profile)


def hardware_facts(sysfs: Path = Path("/sys")) -> dict:
    """What a device has for training and metering, for `edgetrain cluster check`: its NVIDIA GPUs (by
    NVML, or a Jetson's integrated one), and the hardware meter shards would use (None: the profile meter)."""
    gpus: list[str] = []
    nvml = NvmlMeter.detect()
    if nvml is not None:
        for handle in nvml.handles:
            name = nvml.nvml.nvmlDeviceGetName(handle)
            gpus.append(name.decode() if isinstance(name, bytes) else str(name))
    jetson = JetsonRailMeter.detect(sysfs)
    if jetson is not None:
        jetson.close()
        if not gpus:
            gpus.append("NVIDIA Jetson (integrated)")
    meter = hardware_meter(sysfs)
    if meter is not None:
        meter.close()
    return {"gpus": gpus, "meter": meter.name if meter is not None else None}

