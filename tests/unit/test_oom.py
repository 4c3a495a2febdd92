"""Telling a shard the kernel killed for memory from one killed by hand: the memory cgroup's count."""

from edgetrain.runtime.device.oom import oom_kill_count


def test_the_oom_kill_count_is_read_from_the_memory_cgroup_of_v1_and_v2(tmp_path):
    v1 = tmp_path / "v1"
    (v1 / "memory" / "etd0").mkdir(parents=True)
    (v1 / "memory" / "etd0" / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    proc = tmp_path / "cgroup-v1"
    proc.write_text("12:cpu,cpuacct:/etd0\n7:memory:/etd0\n0::/\n")
    assert oom_kill_count(proc, v1) == 3
    v2 = tmp_path / "v2"
    (v2 / "system.slice" / "edgetrain-worker.service").mkdir(parents=True)
    (v2 / "system.slice" / "edgetrain-worker.service" / "memory.events").write_text(
        "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n")
    proc2 = tmp_path / "cgroup-v2"
    proc2.write_text("0::/system.slice/edgetrain-worker.service\n")
    assert oom_kill_count(proc2, v2) == 2


def test_an_unreadable_cgroup_means_unknown_not_zero(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("7:memory:/gone\n")
    assert oom_kill_count(proc, tmp_path) is None
    assert oom_kill_count(tmp_path / "missing", tmp_path) is None
