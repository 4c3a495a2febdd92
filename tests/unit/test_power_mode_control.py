"""Setting a power mode live: the emulated device's CFS bandwidth (runtime/device/power_modes.py), the
profile meter's price of a mode, and the worker's refusal where it cannot set one."""

from __future__ import annotations

import dataclasses
import queue

import pytest

from conftest import run_cli, serve_on_a_free_port
from edgetrain.core.errors import RunError
from edgetrain.runtime.coordinator.remote import WorkerClient
from edgetrain.runtime.device.energy import PowerProfile, Usage
from edgetrain.runtime.device.power_modes import CpuQuotaModes
from edgetrain.runtime.device.worker import Worker
from edgetrain.runtime.wire.spec import ShardSpec


def _cgroup_v1(tmp_path, quota: int, period: int, path: str = "/et1234d0"):
    proc = tmp_path / "cgroup"
    proc.write_text(f"5:memory:/\n4:cpuacct:{path}\n3:cpu:{path}\n0::/\n")
    group = tmp_path / "root" / "cpu" / path.lstrip("/")
    group.mkdir(parents=True)
    (group / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (group / "cpu.cfs_period_us").write_text(f"{period}\n")
    return proc, tmp_path / "root", group


def _share(modes: CpuQuotaModes) -> float:
    quota, period = modes.read()
    return quota / period


def test_a_mode_scales_the_devices_cpu_share_and_the_top_mode_restores_it(tmp_path):
    proc, root, group = _cgroup_v1(tmp_path, quota=2000, period=2000)  # a 1-core device
    modes = CpuQuotaModes.detect(2000, 2000, proc_cgroup=proc, root=root)
    assert modes is not None and modes.directory == group and modes.v1
    modes.set(0.6)
    assert _share(modes) == pytest.approx(0.6, rel=1e-3)
    modes.reset()
    assert modes.read() == (2000, 2000)


def test_a_small_share_in_a_low_mode_lengthens_the_period_as_cfs_needs_a_1_ms_quota(tmp_path):
    # Mininet gives a 0.1-share host of a 2-core machine a 1 ms quota over a 5 ms period.
    proc, root, _ = _cgroup_v1(tmp_path, quota=1000, period=5000)
    modes = CpuQuotaModes.detect(1000, 5000, proc_cgroup=proc, root=root)
    modes.set(0.5)
    quota, period = modes.read()
    assert quota >= 1000 and quota / period == pytest.approx(0.1, rel=1e-3)
    with pytest.raises(ValueError, match="below what CFS can emulate"):
        modes.set(0.001)


def test_the_top_bandwidth_is_the_emulators_not_what_a_restarted_worker_finds(tmp_path):
    # A worker killed while its device ran at half speed left the quota halved; the next one is told the top.
    proc, root, _ = _cgroup_v1(tmp_path, quota=1000, period=2000)
    modes = CpuQuotaModes.detect(2000, 2000, proc_cgroup=proc, root=root)
    modes.reset()
    assert modes.read() == (2000, 2000)


def test_cgroup_v2_bandwidth_is_one_file(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("0::/device\n")
    group = tmp_path / "root" / "device"
    group.mkdir(parents=True)
    (group / "cpu.max").write_text("50000 100000\n")
    modes = CpuQuotaModes.detect(50000, 100000, proc_cgroup=proc, root=tmp_path / "root")
    modes.set(0.5)
    assert (group / "cpu.max").read_text() == "25000 100000" and _share(modes) == pytest.approx(0.25)


@pytest.mark.parametrize("case", ["no top given", "root cgroup", "no quota file"])
def test_a_device_that_cannot_scale_its_quota_has_no_modes(tmp_path, case):
    proc, root, group = _cgroup_v1(tmp_path, 2000, 2000, path="/" if case == "root cgroup" else "/et1234d0")
    if case == "no quota file":
        (group / "cpu.cfs_quota_us").unlink()
    top = (None, None) if case == "no top given" else (2000, 2000)
    assert CpuQuotaModes.detect(*top, proc_cgroup=proc, root=root) is None


def test_the_profile_meter_prices_a_mode_as_the_cost_model_does():
    top = PowerProfile(idle_w=3.0, active_w=15.0, tx_j_per_byte=0.0, rx_j_per_byte=0.0, cores=0.4)
    mode = top.in_mode(speed=0.6, power=0.33)
    work_cpu_s = 0.4  # one second of full load in the top mode
    at_top = top.energy(Usage(wall_s=1.0, cpu_s=work_cpu_s, bytes_sent=0, bytes_recv=0))
    # The same CPU work at 0.6 the speed takes 1/0.6 s, busy all along, at 0.33 of the compute power.
    lowered = mode.energy(Usage(wall_s=1 / 0.6, cpu_s=work_cpu_s, bytes_sent=0, bytes_recv=0))
    assert at_top == pytest.approx(15.0)
    assert lowered == pytest.approx(3.0 / 0.6 + 0.33 * 12.0 / 0.6)
    assert lowered < at_top  # this mode saves energy on compute-bound work, and takes longer


def _spec(**changes) -> ShardSpec:
    spec = ShardSpec(rank=0, world_size=1, kind="local", device="dev0", master_addr="127.0.0.1", master_port=29500,
                     model={"layers": 1, "d_model": 8, "heads": 2, "seq_len": 4, "batch_size": 2}, seed=0, steps=1,
                     profile="laptop", cores=1.0)
    return dataclasses.replace(spec, **changes) if changes else spec


def test_a_spec_carries_a_mode_with_its_figures_or_none(tmp_path):
    assert _spec(power_mode="7W", power_speed=0.6, power_scale=0.33).power_speed == 0.6
    for bad in ({"power_mode": "7W"}, {"power_speed": 0.5}, {"power_mode": "7W", "power_speed": 1.5, "power_scale": 0.3},
                {"power_mode": "7W", "power_speed": 1.0, "power_scale": 0.3}):
        with pytest.raises(ValueError):
            _spec(**bad)


def test_a_worker_that_cannot_set_a_mode_refuses_the_plan_in_one_sentence(tmp_path):
    token = b"k" * 32
    worker = Worker("dev0", ("127.0.0.1", 0), token, heartbeat_s=0.2, workdir=str(tmp_path / "w"))
    worker.warm_up = lambda: None  # no shard process: the refusal comes before one is taken
    assert worker.power_modes is None and worker.state()["power_modes"] is None
    serve_on_a_free_port(worker)
    client = WorkerClient("dev0", worker.listen, token)
    try:
        with pytest.raises(RunError, match="device dev0 cannot set power mode 7W: only an emulated device"):
            client.start(_spec(power_mode="7W", power_speed=0.6, power_scale=0.33), queue.Queue())
        assert client.status()["shards_running"] == 0
    finally:
        client.close()
        worker.shutdown()


def test_a_worker_told_half_a_top_bandwidth_or_one_cfs_refuses_says_so_in_one_sentence(tmp_path):
    token = tmp_path / "token"
    assert run_cli("token", "--out", str(token), timeout=60).returncode == 0
    worker = ("worker", "--listen", "127.0.0.1:1", "--token-file", str(token), "--device", "d")
    for flags, expected in ((("--cpu-quota-us", "1000"), "--cpu-quota-us and --cpu-period-us come together"),
                            (("--cpu-quota-us", "1000", "--cpu-period-us", "2000000"), "is not one CFS takes")):
        result = run_cli(*worker, *flags, timeout=60)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-1500:]
        assert expected in result.stderr.strip().splitlines()[-1], result.stderr
