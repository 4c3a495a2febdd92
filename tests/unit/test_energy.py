import pytest

from edgetrain.runtime.device.energy import (
    JetsonRailMeter,
    PowerProfile,
    ProfileMeter,
    RaplMeter,
    Usage,
    select_meter,
)

PROFILE = PowerProfile(idle_w=2.0, active_w=10.0, tx_j_per_byte=1e-6, rx_j_per_byte=5e-7, cores=0.5)


def test_profile_meter_charges_idle_power_busy_increment_and_radio():
    # 4 s of wall time, 1 CPU second on a half-core device = 2 busy seconds.
    energy = ProfileMeter(PROFILE).measure(Usage(wall_s=4.0, cpu_s=1.0, bytes_sent=1_000_000, bytes_recv=2_000_000))
    assert energy == pytest.approx(2.0 * 4 + 8.0 * 2 + 1.0 + 1.0)


def test_profile_meter_caps_busy_time_at_wall_time():
    energy = ProfileMeter(PROFILE).measure(Usage(wall_s=1.0, cpu_s=5.0, bytes_sent=0, bytes_recv=0))
    assert energy == pytest.approx(10.0)


def _rapl(root, energy_uj, max_uj=1000):
    zone = root / "class" / "powercap" / "intel-rapl:0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "energy_uj").write_text(str(energy_uj))
    (zone / "max_energy_range_uj").write_text(str(max_uj))
    return zone


def test_rapl_meter_reads_counter_growth_across_a_wraparound(tmp_path):
    zone = _rapl(tmp_path, 900)
    sub = tmp_path / "class" / "powercap" / "intel-rapl:0:0"  # a sub-zone must not be counted twice
    sub.mkdir()
    meter = select_meter(PROFILE, use_hardware=True, sysfs=tmp_path)
    assert isinstance(meter, RaplMeter) and meter.name == "rapl" and len(meter.zones) == 1
    (zone / "energy_uj").write_text("950")
    assert meter.measure(Usage(1, 1, 0, 0)) == pytest.approx(50e-6)
    (zone / "energy_uj").write_text("49")  # wrapped past 1000
    assert meter.measure(Usage(1, 1, 0, 0)) == pytest.approx(100e-6)


def test_jetson_meter_prefers_the_board_input_rail(tmp_path):
    hwmon = tmp_path / "class" / "hwmon" / "hwmon3"
    hwmon.mkdir(parents=True)
    (hwmon / "name").write_text("ina3221\n")
    for index, (label, mv, ma) in enumerate([("VDD_IN", 5000, 1000), ("VDD_CPU_GPU_CV", 5000, 400)], start=1):
        (hwmon / f"in{index}_label").write_text(label)
        (hwmon / f"in{index}_input").write_text(str(mv))
        (hwmon / f"curr{index}_input").write_text(str(ma))
    meter = select_meter(PROFILE, use_hardware=True, sysfs=tmp_path)
    try:
        assert isinstance(meter, JetsonRailMeter)
        assert meter._power() == pytest.approx(5.0)  # only VDD_IN: 5 V x 1 A
    finally:
        meter.close()


def test_without_hardware_counters_the_profile_meter_is_used(tmp_path):
    assert select_meter(PROFILE, use_hardware=True, sysfs=tmp_path).name == "profile"
    _rapl(tmp_path, 10)
    assert select_meter(PROFILE, use_hardware=False, sysfs=tmp_path).name == "profile"


class _FakeNvml:
    """pynvml's energy counter API over a GPU whose counter the test advances (millijoules)."""

    def __init__(self):
        self.mj = 1000

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return self.mj

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA H100"


def test_an_nvidia_gpu_is_metered_without_rapl(tmp_path, monkeypatch):
    """Before: NVML was only consulted when RAPL counters existed, so a GPU host without RAPL got the
    profile meter. Now every meter present counts: NVML alone, or summed with RAPL."""
    from edgetrain.runtime.device.energy import NvmlMeter, SumMeter
    fake = _FakeNvml()
    monkeypatch.setattr(NvmlMeter, "detect", classmethod(lambda cls: cls(fake, ["gpu0"])))
    meter = select_meter(PROFILE, use_hardware=True, sysfs=tmp_path)  # no RAPL zones in this sysfs
    assert isinstance(meter, NvmlMeter) and meter.name == "nvml"
    fake.mj += 2500
    assert meter.measure(Usage(1, 1, 0, 0)) == pytest.approx(2.5)
    zone = _rapl(tmp_path, 100)
    both = select_meter(PROFILE, use_hardware=True, sysfs=tmp_path)
    assert isinstance(both, SumMeter)
    (zone / "energy_uj").write_text("600")
    fake.mj += 1000
    assert both.measure(Usage(1, 1, 0, 0)) == pytest.approx(500e-6 + 1.0)


class _FakeZeusMonitor:
    """ZeusMonitor's window API (begin_window/end_window, the fields of its Measurement) over counters the
    test advances: which windows are open, and what each closed one measured."""

    def __init__(self, gpus=(0,), cpus=(0,), soc_total_mj=None):
        from types import SimpleNamespace
        self.gpu_indices, self.cpu_indices = list(gpus), list(cpus)
        self.soc_is_present = soc_total_mj is not None
        self.soc_total_mj = soc_total_mj
        self.counters = {"gpu": 0.0, "cpu": 0.0, "dram": 0.0}
        self.open: dict[str, dict] = {}
        self._ns = SimpleNamespace

    def begin_window(self, key, sync_execution=True, restart=False):
        assert key not in self.open, "a window opened twice"
        self.open[key] = {**self.counters, "soc": self.soc_total_mj}

    def end_window(self, key, sync_execution=True, cancel=False):
        start = self.open.pop(key)
        delta = {k: self.counters[k] - start[k] for k in ("gpu", "cpu", "dram")}
        soc = self._ns(total_energy_mj=self.soc_total_mj - start["soc"]) if self.soc_is_present else None
        return self._ns(time=1.0, gpu_energy={i: delta["gpu"] for i in self.gpu_indices},
                        cpu_energy={i: delta["cpu"] for i in self.cpu_indices} or None,
                        dram_energy={i: delta["dram"] for i in self.cpu_indices} or None, soc_energy=soc)


def test_zeus_meter_measures_each_interval_in_its_own_window():
    """The adapter over Zeus's monitor: one window per interval, closed and reopened by each reading, GPUs,
    CPU packages and DRAM summed, and the name says what Zeus covers."""
    from edgetrain.runtime.device.energy import ZeusMeter
    monitor = _FakeZeusMonitor(gpus=(0, 1), cpus=(0,))
    meter = ZeusMeter(monitor)
    assert meter.name == "zeus:gpu0,gpu1,cpu0" and list(monitor.open) == [ZeusMeter.WINDOW]
    monitor.counters.update(gpu=3.0, cpu=1.5, dram=0.25)
    assert meter.measure(Usage(1, 1, 0, 0)) == pytest.approx(2 * 3.0 + 1.5 + 0.25)
    monitor.counters.update(gpu=4.0)  # only what came after the last reading
    assert meter.measure(Usage(1, 1, 0, 0)) == pytest.approx(2 * 1.0)
    meter.close()
    assert monitor.open == {}


def test_zeus_meter_takes_a_jetson_boards_total_alone():
    """On a Jetson the board's input rail covers CPU and GPU: its total is not added to the parts."""
    from edgetrain.runtime.device.energy import ZeusMeter
    monitor = _FakeZeusMonitor(gpus=(0,), cpus=(), soc_total_mj=1000.0)
    meter = ZeusMeter(monitor)
    assert meter.name == "zeus:gpu0,soc"
    monitor.soc_total_mj += 2500.0
    monitor.counters.update(gpu=1.0)
    assert meter.measure(Usage(1, 1, 0, 0)) == pytest.approx(2.5)


def test_zeus_is_preferred_where_it_finds_a_sensor(monkeypatch, tmp_path):
    """Zeus's monitor is the meter wherever it finds a sensor (also in what a worker reports); for another
    sysfs than the machine's, or when not asked, it is not consulted."""
    from edgetrain.runtime.device.energy import NvmlMeter, ZeusMeter, hardware_facts
    monkeypatch.setattr(ZeusMeter, "detect", classmethod(lambda cls: cls(_FakeZeusMonitor())))
    # Where edgetrain's own readers find no sensor, Zeus is not even imported (it costs 1 s of CPU).
    monkeypatch.setattr(NvmlMeter, "detect", classmethod(lambda cls: None))
    assert select_meter(PROFILE, use_hardware=True, sysfs=tmp_path).name == "profile"
    assert select_meter(PROFILE, use_hardware=True).name == "profile"
    monkeypatch.setattr(NvmlMeter, "detect", classmethod(lambda cls: cls(_FakeNvml(), ["gpu0"])))
    assert select_meter(PROFILE, use_hardware=True).name == "zeus:gpu0,cpu0"
    assert hardware_facts() == {"gpus": ["NVIDIA H100"], "meter": "zeus:gpu0,cpu0"}
    assert select_meter(PROFILE, use_hardware=False).name == "profile"
    assert select_meter(PROFILE, use_hardware=True, sysfs=tmp_path).name == "nvml"  # not the machine's /sys


def test_on_a_machine_without_sensors_zeus_finds_none_and_the_profile_meter_is_used():
    """The real Zeus (installed with the project) on a host with no GPU and no RAPL counters, as CI's:
    its monitor comes up empty, which must give the profile meter, not an error in every shard."""
    import glob
    from pathlib import Path

    from edgetrain.runtime.device.energy import ZeusMeter
    pytest.importorskip("zeus.monitor")
    if Path("/sys/class/powercap").exists() or glob.glob("/dev/nvidia[0-9]*") or glob.glob("/sys/class/hwmon/*/name"):
        pytest.skip("this machine has sensors Zeus may read")
    assert ZeusMeter.detect() is None
    assert select_meter(PROFILE, use_hardware=True).name == "profile"
