"""Telling a shard the kernel killed for memory from one killed by hand: the memory cgroup's count."""

from edgetrain.runtime.device.oom import memory_in_use, oom_kill_count


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


def test_memory_in_use_counts_processes_own_memory_against_the_cap_and_no_cap_is_unknown(tmp_path):
    group = tmp_path / "memory" / "etd0"
    group.mkdir(parents=True)
    (group / "memory.limit_in_bytes").write_text(str(600 << 20))
    (group / "memory.stat").write_text(f"cache {500 << 20}\nrss {100 << 20}\ntotal_cache {500 << 20}\n"
                                       f"total_rss {540 << 20}\n")  # the page cache fills the cap: not counted
    proc = tmp_path / "cgroup-v1"
    proc.write_text("7:memory:/etd0\n0::/\n")
    assert abs(memory_in_use(proc, tmp_path) - 0.9) < 1e-9
    (group / "memory.limit_in_bytes").write_text("9223372036854771712")  # v1's "unlimited"
    assert memory_in_use(proc, tmp_path) is None
    service = tmp_path / "v2" / "edgetrain-worker.service"
    service.mkdir(parents=True)
    (service / "memory.max").write_text(f"{1 << 30}\n")
    (service / "memory.stat").write_text(f"anon {256 << 20}\nfile {700 << 20}\n")
    proc2 = tmp_path / "cgroup-v2"
    proc2.write_text("0::/edgetrain-worker.service\n")
    assert memory_in_use(proc2, tmp_path / "v2") == 0.25
    (service / "memory.max").write_text("max\n")
    assert memory_in_use(proc2, tmp_path / "v2") is None
