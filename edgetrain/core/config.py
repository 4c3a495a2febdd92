"""Typed, validated scenario configuration (the YAML format of DESIGN.md).

Every config is a frozen dataclass whose `__post_init__` checks its own values and raises
`ConfigValueError` naming the field; `edgetrain.core.scenario` turns those into one sentence with the file
and the full key path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional


class ConfigValueError(ValueError):
    """A bad value in one field of a config object."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigValueError(key, message)


def _positive(value: float, key: str) -> None:
    _check(isinstance(value, (int, float)) and math.isfinite(value) and value > 0, key,
           f"must be a positive number, got {value!r}")


DEFAULT_SWITCH_S = 2.0
"""Seconds a plan switch costs when the scenario does not say: shards restarted on the testbed."""
MAX_SWITCH_S = 600.0


@dataclass(frozen=True)
class Objective:
    """What one training job must achieve and how energy is traded against time."""

    eta: float = 0.5
    """Zeus trade-off knob in [0, 1]: 1 minimises energy only, 0 minimises time only."""
    target_samples: int = 20000
    """Training samples (sequences) after which the job is done."""

    def __post_init__(self):
        _check(0.0 <= self.eta <= 1.0, "eta", f"must be between 0 and 1, got {self.eta!r}")
        _positive(self.target_samples, "target_samples")


@dataclass(frozen=True)
class ModelConfig:
    """The GPT-style byte-level language model and its training batch."""

    layers: int = 4
    """Number of Transformer blocks."""
    d_model: int = 128
    """Width of the residual stream."""
    heads: int = 4
    """Attention heads; d_model must be divisible by it."""
    seq_len: int = 64
    """Tokens (bytes) per training sequence."""
    batch_size: int = 16
    """Sequences per global training step, whatever the plan."""
    d_ff: Optional[int] = None
    """Hidden width of the MLP; 4 * d_model when not given."""
    lr: float = 1e-3
    """AdamW learning rate."""
    microbatches: Optional[int] = None
    """Pipeline micro-batches per step; when not given, the largest divisor of batch_size up to
    twice the number of stages (and at least the number of stages)."""

    vocab_size: int = field(default=256, init=False)
    """Bytes: the model reads raw UTF-8 bytes, so the vocabulary is fixed."""

    def __post_init__(self):
        for key in ("layers", "d_model", "heads", "seq_len", "batch_size"):
            value = getattr(self, key)
            _check(isinstance(value, int) and value > 0, key, f"must be a positive integer, got {value!r}")
        _check(self.d_model % self.heads == 0, "heads",
               f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        if self.d_ff is not None:
            _check(isinstance(self.d_ff, int) and self.d_ff > 0, "d_ff",
                   f"must be a positive integer, got {self.d_ff!r}")
        _positive(self.lr, "lr")
        if self.microbatches is not None:
            _check(isinstance(self.microbatches, int) and self.microbatches > 0, "microbatches",
                   f"must be a positive integer, got {self.microbatches!r}")
            _check(self.batch_size % self.microbatches == 0, "microbatches",
                   f"batch_size ({self.batch_size}) must be divisible by microbatches ({self.microbatches})")

    @property
    def ffn_dim(self) -> int:
        return self.d_ff if self.d_ff is not None else 4 * self.d_model

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads


AVAILABILITY_KINDS = ("always", "markov", "sessions", "trace")


@dataclass(frozen=True)
class Availability:
    """When a device is there: always, a two-state Markov chain, sessions of a typical length (optionally
    only in some hours of the day), or a recorded file of intervals."""

    kind: str = "always"
    """One of always, markov, sessions, trace."""
    mean_up_s: Optional[float] = None
    """markov, sessions: mean time online, seconds."""
    mean_down_s: Optional[float] = None
    """markov, sessions: mean time offline, seconds."""
    shape: Optional[float] = None
    """sessions: Weibull shape of the online and offline durations (default 3). 1 is the Markov chain
    (memoryless: how long a device has been up says nothing of when it leaves); above 1 durations
    cluster around their mean, so a device that has been up long is about to leave; below 1 they are
    heavy-tailed."""
    hours: Optional[tuple] = None
    """sessions: [start_h, end_h] windows of the day (0-24) outside which the device is offline (a phone
    that trains only while idle, charging and on Wi-Fi, mostly at night: Bonawitz et al., MLSys'19);
    the scenario's `start_hour` says what time of day the job starts. Default: any hour."""
    file: Optional[str] = None
    """trace: a file of `start_s end_s` online intervals, one per line (relative to the scenario file)."""

    def __post_init__(self):
        _check(self.kind in AVAILABILITY_KINDS, "kind",
               f"must be one of {', '.join(AVAILABILITY_KINDS)}, got {self.kind!r}")
        if self.kind in ("markov", "sessions"):
            _check(self.mean_up_s is not None, "mean_up_s", f"is required for kind {self.kind}")
            _check(self.mean_down_s is not None, "mean_down_s", f"is required for kind {self.kind}")
            _positive(self.mean_up_s, "mean_up_s")
            _positive(self.mean_down_s, "mean_down_s")
        elif self.kind == "trace":
            _check(isinstance(self.file, str) and self.file != "", "file", "is required for kind trace")
        if self.kind == "sessions":
            if self.shape is not None:
                _check(isinstance(self.shape, (int, float)) and 0.2 <= self.shape <= 20, "shape",
                       f"must be a number from 0.2 to 20, got {self.shape!r}")
            if self.hours is not None:
                object.__setattr__(self, "hours", _hour_windows(self.hours))
        owners = {"mean_up_s": ("markov", "sessions"), "mean_down_s": ("markov", "sessions"),
                  "shape": ("sessions",), "hours": ("sessions",), "file": ("trace",)}
        for key, kinds in owners.items():
            if self.kind not in kinds:
                _check(getattr(self, key) is None, key, f"does not apply to availability kind {self.kind!r}")

    @property
    def weibull_shape(self) -> float:
        return 3.0 if self.shape is None else float(self.shape)


def _hour_windows(value, key: str = "hours") -> tuple[tuple[float, float], ...]:
    """[[start_h, end_h], ...] within one day, increasing and disjoint."""
    ok = isinstance(value, (list, tuple)) and len(value) > 0
    windows = []
    for window in value if ok else ():
        if not (isinstance(window, (list, tuple)) and len(window) == 2
                and all(isinstance(h, (int, float)) and not isinstance(h, bool) for h in window)):
            ok = False
            break
        start, end = float(window[0]), float(window[1])
        if not (0 <= start < end <= 24) or (windows and start < windows[-1][1]):
            ok = False
            break
        windows.append((start, end))
    _check(ok, key, f"must be a list of [start_h, end_h] windows with 0 <= start < end <= 24, increasing "
                        f"and disjoint, got {value!r}")
    return tuple(windows)


@dataclass(frozen=True)
class PowerMode:
    """One of a device's power modes below its top one (a Jetson's nvpmodel modes: fewer cores and lower
    clocks at a lower power budget; zTT, MobiSys'21; Zeus, NSDI'23). The top mode is the device's profile
    and calibration as they are; a lower one computes at `speed` times their speed and draws `power`
    times their compute power above idle. Lowering the clock saves more power than it loses speed
    (dynamic power grows faster than linearly with frequency), so power < speed is the usual shape:
    each step of compute costs less energy, and takes longer."""

    name: str
    speed: float
    power: float

    def __post_init__(self):
        _check(isinstance(self.name, str) and self.name.replace("-", "").replace("_", "").replace(".", "").isalnum()
               and self.name != TOP_POWER_MODE, "name",
               f"must be letters, digits, '-', '_' or '.', and not {TOP_POWER_MODE!r} (the top mode), got {self.name!r}")
        for key in ("speed", "power"):
            value = getattr(self, key)
            _check(isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1, key,
                   f"must be a fraction of the top mode's, above 0 and below 1, got {value!r}")


TOP_POWER_MODE = "max"
"""The name of every device's top power mode: its profile and calibration as they are."""
MAX_POWER_MODES = 4
"""Lower power modes a device may have (each multiplies the plans a policy chooses among)."""


def _power_modes(value) -> tuple[PowerMode, ...]:
    _check(isinstance(value, dict) and 0 < len(value) <= MAX_POWER_MODES, "power_modes",
           f"must map 1 to {MAX_POWER_MODES} mode names to {{speed: FRACTION, power: FRACTION}}, got {value!r}")
    modes = []
    for name, figures in value.items():
        _check(isinstance(figures, dict) and set(figures) == {"speed", "power"}, f"power_modes.{name}",
               f"must be {{speed: FRACTION, power: FRACTION}}, got {figures!r}")
        try:
            modes.append(PowerMode(str(name), figures["speed"], figures["power"]))
        except ConfigValueError as exc:
            raise ConfigValueError(f"power_modes.{name}.{exc.key}" if exc.key != "name" else "power_modes",
                                   exc.message) from None
    return tuple(modes)


@dataclass(frozen=True)
class DeviceConfig:
    """One edge device of a scenario."""

    name: str
    """Unique name, used in plans (`dp:name1,name2`)."""
    profile: str
    """Key of the device profile catalog (power, radio energy, memory)."""
    cpu_share: float = 0.2
    """Fraction of the WHOLE machine's CPU in emulation (Mininet's convention)."""
    bandwidth_mbps: float = 50.0
    """Link bandwidth to the access point, Mbit/s."""
    delay_ms: float = 0.0
    """One-way link delay; needs netem."""
    loss_pct: float = 0.0
    """Packet loss on the link in percent; needs netem."""
    memory_mb: Optional[int] = None
    """Memory available to training, MiB; the profile's memory when not given."""
    battery_wh: Optional[float] = None
    """Battery capacity; None for a mains-powered device."""
    battery_initial_pct: float = 100.0
    """Charge at the start of the scenario, percent."""
    availability: Availability = field(default_factory=Availability)
    """When the device is online."""
    charging_hours: Optional[tuple] = None
    """Battery devices: [start_h, end_h] windows of the day (0-24) when the device is plugged in: its
    battery charges at `charge_w` minus what it draws, and a device that ran flat comes back once charged
    to 20% (a phone on its charger at night, a laptop at its desk). Default: never plugged in."""
    charge_w: float = 10.0
    """Battery devices: charger power into the battery while plugged in, W (default 10: a 5 V, 2 A charger)."""
    power_modes: tuple = ()
    """Lower power modes a plan may run this device in (`dp:orin-nano~7W,pi4`, DESIGN.md), as YAML
    `{7W: {speed: 0.6, power: 0.45}}`; parsed to PowerMode. Default: the top mode alone."""

    def __post_init__(self):
        _check(isinstance(self.name, str) and self.name.replace("-", "").replace("_", "").isalnum(), "name",
               f"must be letters, digits, '-' or '_', got {self.name!r}")
        _check(isinstance(self.profile, str), "profile", f"must be a profile name, got {self.profile!r}")
        _check(isinstance(self.cpu_share, (int, float)) and 0 < self.cpu_share <= 1, "cpu_share",
               f"must be in (0, 1], got {self.cpu_share!r}")
        _positive(self.bandwidth_mbps, "bandwidth_mbps")
        _check(isinstance(self.delay_ms, (int, float)) and self.delay_ms >= 0, "delay_ms",
               f"must be >= 0, got {self.delay_ms!r}")
        _check(isinstance(self.loss_pct, (int, float)) and 0 <= self.loss_pct <= 100, "loss_pct",
               f"must be in [0, 100], got {self.loss_pct!r}")
        if self.memory_mb is not None:
            _check(isinstance(self.memory_mb, int) and self.memory_mb > 0, "memory_mb",
                   f"must be a positive integer, got {self.memory_mb!r}")
        if self.battery_wh is not None:
            _positive(self.battery_wh, "battery_wh")
        _check(isinstance(self.battery_initial_pct, (int, float)) and 0 < self.battery_initial_pct <= 100,
               "battery_initial_pct", f"must be in (0, 100], got {self.battery_initial_pct!r}")
        _positive(self.charge_w, "charge_w")
        if self.charging_hours is not None:
            _check(self.battery_wh is not None, "charging_hours", "needs battery_wh (only a battery charges)")
            object.__setattr__(self, "charging_hours", _hour_windows(self.charging_hours, "charging_hours"))
        if self.power_modes and not all(isinstance(m, PowerMode) for m in self.power_modes):
            object.__setattr__(self, "power_modes", _power_modes(self.power_modes))

    def power_mode(self, name: str) -> Optional[PowerMode]:
        """The lower power mode of this name; None for the top mode; KeyError for a mode it lacks."""
        if name in ("", TOP_POWER_MODE):
            return None
        for mode in self.power_modes:
            if mode.name == name:
                return mode
        raise KeyError(name)


# Share of the machine kept for the coordinator and the test runner (DESIGN.md).
MAX_TOTAL_CPU_SHARE = 0.8


@dataclass(frozen=True)
class Scenario:
    """A named fleet of devices, the model they train, and the objective."""

    name: str
    devices: tuple[DeviceConfig, ...]
    objective: Objective = field(default_factory=Objective)
    model: ModelConfig = field(default_factory=ModelConfig)
    start_hour: float = 0.0
    """Time of day the job starts, hours (0-24): where a device's `hours` windows begin to count."""
    switch_s: Optional[float] = None
    """Seconds a switch to another plan costs this fleet (its shards started on the new devices, the
    state moved): the simulator's price of a switch. Default: the testbed's (`DEFAULT_SWITCH_S`); boards
    that start torch cold, or move big models over slow links, take longer."""
    source: Optional[str] = None
    """The file it was loaded from, if any (not a YAML key)."""

    def __post_init__(self):
        _check(isinstance(self.name, str) and self.name != "", "name", "must be a non-empty string")
        _check(len(self.devices) > 0, "devices", "must list at least one device")
        _check(isinstance(self.start_hour, (int, float)) and 0 <= self.start_hour < 24, "start_hour",
               f"must be a number of hours from 0 to 24, got {self.start_hour!r}")
        if self.switch_s is not None:
            _check(isinstance(self.switch_s, (int, float)) and math.isfinite(self.switch_s)
                   and 0 <= self.switch_s <= MAX_SWITCH_S, "switch_s",
                   f"must be a number of seconds from 0 to {MAX_SWITCH_S:.0f}, got {self.switch_s!r}")
        names = [d.name for d in self.devices]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        _check(not duplicates, "devices", f"device names must be unique, repeated: {', '.join(duplicates)}")
        total = sum(d.cpu_share for d in self.devices)
        _check(total <= MAX_TOTAL_CPU_SHARE + 1e-9, "devices",
               f"cpu_share values sum to {total:.2f}, more than {MAX_TOTAL_CPU_SHARE} of the machine "
               "(keep the rest for the coordinator)")

    def device(self, name: str) -> DeviceConfig:
        for device in self.devices:
            if device.name == name:
                return device
        raise KeyError(name)

    @property
    def device_names(self) -> list[str]:
        return [d.name for d in self.devices]
