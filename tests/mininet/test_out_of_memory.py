"""A device that runs out of memory although the plan was predicted to fit (another program took the
memory): the kernel of its memory cgroup kills the shard, the worker tells that from a kill by hand
(the cgroup's OOM-kill count, runtime/device/oom.py), the coordinator says so in one sentence and the
job goes on without that device. Real: the testbed's memory cgroups, a real program holding memory."""

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

HOG_MB = 300
"""What the other program holds on the laptop: with its worker (and no standby: the worker starts none
on a device over half full) a shard of the big model no longer fits in the laptop's 600 MiB, though the
plan, counted alone, does. (With 200 MiB it was the standby, importing torch beside the shard, that
pushed the device over, and the kernel killed either one: 2 CI runs of 4 reported "device lost".)"""


def test_a_shard_killed_for_memory_is_reported_and_the_job_recovers_without_that_device(tmp_path):
    from edgetrain.core.feasibility import plan_problems
    from edgetrain.core.plans import Plan
    from edgetrain.core.scenario import load_scenario
    from edgetrain.fleet.backends import open_backend
    from edgetrain.runtime.coordinator.job import Job
    from edgetrain.runtime.coordinator.recovery import run_with_recovery
    big = load_scenario("big-model")
    devices = tuple(dataclasses.replace(d, memory_mb=600 if d.name == "laptop" else 2000)
                    for d in big.devices if d.name in ("laptop", "xavier-nx"))
    scenario = dataclasses.replace(big, devices=devices)
    plan = Plan.parse("dp:laptop,xavier-nx")
    assert not plan_problems(plan, scenario)  # predicted to fit: the other program is not in the prediction
    lines = []
    with open_backend("mininet", scenario, tmp_path, follow_availability=False) as backend:
        # The program protects itself from the OOM killer (as a phone's foreground app would be).
        hog = backend.testbed.network.popen("laptop", [sys.executable, "-c", (
            "import time; open('/proc/self/oom_score_adj', 'w').write('-1000'); "
            f"x = bytearray({HOG_MB} << 20); x[::4096] = b'1' * len(x[::4096]); print('held', flush=True); "
            "time.sleep(600)")], stdout=subprocess.PIPE, text=True)
        try:
            assert hog.stdout.readline().strip() == "held"
            time.sleep(1.0)
            job = Job(scenario=scenario, plan=plan, steps=4, run_dir=tmp_path / "run",
                      checkpoint_out=str(tmp_path / "ckpt.pt"), checkpoint_every=2,
                      device_cores=backend.device_cores, socket_ifnames=backend.socket_ifnames)
            metrics = run_with_recovery(job, backend.launcher, progress=lines.append)
        finally:
            hog.kill()
    assert [s["step"] for s in metrics.steps][-1] == 4
    (record,) = metrics.recoveries
    assert record["cause"] == "out of memory" and record["devices"] == ["laptop"], (record, lines, _logs(tmp_path))
    assert record["new_plan"] == "local:xavier-nx"
    assert any(line.startswith("laptop ran out of memory after step") for line in lines), lines
    assert Path(tmp_path / "ckpt.pt").exists()


def _logs(tmp_path: Path) -> dict[str, str]:
    """The end of every log of the run (the workers' and the shards'): what tells a memory stall from
    a worker the kernel killed, should the cause come out wrong."""
    return {str(p.relative_to(tmp_path)): p.read_text(errors="replace")[-1500:] for p in sorted(tmp_path.rglob("*.log"))}
