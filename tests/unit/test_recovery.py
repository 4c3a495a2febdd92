"""Recovery's rules and limits, around the runtime: which plan takes over, how often it tries, how long
it waits for devices, and that lost work is paid for. The shards here are stand-ins that speak the
shard event protocol (the real ones are exercised in tests/distributed and tests/mininet); the
checkpoints they write are real ones."""

import queue
import threading
import time

import pytest

from conftest import TINY
from edgetrain.core.errors import RunError
from edgetrain.core.plans import Plan
from edgetrain.core.scenario import load_scenario
from edgetrain.runtime.coordinator.job import Job
from edgetrain.runtime.coordinator.launcher import Launcher, ShardHandle, ShardMessage
from edgetrain.runtime.coordinator.metrics import RunMetrics
from edgetrain.runtime.coordinator.recovery import replan, run_with_recovery
from edgetrain.runtime.training.checkpoint import save_checkpoint

pytestmark = pytest.mark.timeout(60)  # a recovery that hangs fails, it does not stall the suite
SCENARIO = load_scenario(TINY)  # 6 heads, MLP 192, seq_len 24, batch 10, 3 layers; devices a, b, c
STEP_J = 2.0  # energy each stand-in shard reports per step


class StandInHandle(ShardHandle):
    def __init__(self):
        self.killed = threading.Event()

    def kill(self) -> None:
        self.killed.set()


class StandInLauncher(Launcher):
    """Shards that report steps at once, write real checkpoints, and go silent when their device is lost.
    `losses`: device -> the steps at which it vanishes, never reporting them (each entry used once);
    `returns_after_s`: how long a lost device stays away (None: for good)."""

    def __init__(self, losses: dict[str, list[int]], returns_after_s=None, out_of_memory=None):
        self.losses = {d: list(steps) for d, steps in losses.items()}
        self.out_of_memory = {d: list(steps) for d, steps in (out_of_memory or {}).items()}
        """device -> steps at which its kernel kills its shard for memory (the device stays)."""
        self.returns_after_s = returns_after_s
        self.gone: dict[str, float] = {}
        self.started_plans: list[str] = []

    def master_address(self, spec_device: str) -> str:
        return "127.0.0.1"

    def lost_devices(self, devices):
        return [d for d in devices if d in self.gone]  # until recovery asks who is there again

    def available_devices(self, devices):
        now = time.monotonic()
        for device, at in list(self.gone.items()):
            if self.returns_after_s is not None and now - at >= self.returns_after_s:
                del self.gone[device]
        return [d for d in devices if d not in self.gone]

    def start(self, spec, messages: "queue.Queue[ShardMessage]", log_path):
        if spec.rank == 0:
            self.started_plans.append(f"{spec.kind}:{spec.device}")
        handle = StandInHandle()
        threading.Thread(target=self._run, args=(spec, messages, handle), daemon=True).start()
        return handle

    def _run(self, spec, messages, handle):
        start = 0
        if spec.resume:
            import torch
            start = torch.load(spec.resume, weights_only=True)["step"]
        messages.put(ShardMessage(spec.rank, event={"event": "ready", "rank": spec.rank, "start_step": start,
                                                    "corpus": "stand-in", "meter": "profile",
                                                    "cpu_source": "process", "startup_s": 0.0}))
        for step in range(start + 1, start + spec.steps + 1):
            if step in self.losses.get(spec.device, []):
                self.losses[spec.device].remove(step)
                self.gone[spec.device] = time.monotonic()
            if handle.killed.is_set() or spec.device in self.gone:
                return  # silent from this step on: as a device that vanished
            if step in self.out_of_memory.get(spec.device, []):
                self.out_of_memory[spec.device].remove(step)
                messages.put(ShardMessage(spec.rank, exit_code=-9, out_of_memory=True))
                return
            messages.put(ShardMessage(spec.rank, event={
                "event": "step", "rank": spec.rank, "step": step, "loss": 1.0, "loss_weight": 1.0 / spec.world_size,
                "time_s": 0.01, "cpu_s": 0.01, "bytes_sent": 0, "bytes_recv": 0, "energy_j": STEP_J,
                "interval_s": 0.01}))
            if spec.checkpoint_every and step % spec.checkpoint_every == 0 and spec.rank == 0:
                save_checkpoint(spec.checkpoint_out, step=step, seed=spec.seed, model_cfg=SCENARIO.model,
                                corpus="stand-in", model_state={}, optim_state={})
                messages.put(ShardMessage(spec.rank, event={"event": "checkpoint", "rank": 0, "step": step,
                                                            "path": spec.checkpoint_out, "time_s": 0.0}))
            time.sleep(0.02)
        messages.put(ShardMessage(spec.rank, event={"event": "done", "rank": spec.rank}))
        messages.put(ShardMessage(spec.rank, exit_code=0))


def job(tmp_path, plan: str, steps: int = 12) -> Job:
    return Job(scenario=SCENARIO, plan=Plan.parse(plan), steps=steps, run_dir=tmp_path,
               checkpoint_out=str(tmp_path / "ckpt.pt"), checkpoint_every=5, stall_timeout_s=20.0)


@pytest.mark.parametrize("plan, available, expected", [
    ("tp:a,b,c", ["a", "c"], "tp:a,c"),       # the same kind on the devices left, in their order
    ("sp:a,b,c", ["a", "b"], "sp:a,b"),
    ("pp:a,b,c", ["c", "a"], "pp:a,c"),       # plan order kept, not availability order
    ("dp:a,b,c", ["b"], "local:b"),           # one device left: alone
    ("dp:a,b", ["c"], "local:c"),             # none of the plan left: the first device there
])
def test_replan_keeps_the_kind_on_the_devices_left(plan, available, expected):
    assert str(replan(Plan.parse(plan), available, SCENARIO)) == expected


def test_replan_falls_back_in_the_documented_order_when_the_kind_cannot_run():
    # tp on 4 devices cannot split 6 heads; the fallbacks are dp, pp, sp, tp: dp first.
    scenario = load_scenario("smart-home")
    assert str(replan(Plan.parse("tp:laptop,orin-nano,xavier-nx,pi4,phone"),
                      ["laptop", "orin-nano", "xavier-nx", "pi4"], scenario)) == "dp:laptop,orin-nano,xavier-nx,pi4"
    assert replan(Plan.parse("dp:a,b"), [], SCENARIO) is None  # nothing left: no plan


def test_a_lost_device_is_recovered_from_the_last_checkpoint_and_lost_work_is_paid_for(tmp_path):
    launcher = StandInLauncher({"b": [8]})  # b never reports step 8
    metrics = run_with_recovery(job(tmp_path, "dp:a,b,c"), launcher, wait_for_devices_s=1.0)
    assert [s["step"] for s in metrics.steps] == list(range(1, 13))
    (recovery,) = metrics.recoveries
    assert recovery["devices"] == ["b"] and recovery["new_plan"] == "dp:a,c"
    assert recovery["step"] == 7 and recovery["resumed_from_step"] == 5
    assert recovery["lost_steps"] == 2  # steps 6 and 7, trained again
    assert sorted(s["step"] for s in metrics.lost_steps) == [6, 7]
    total = metrics.to_dict()["total"]
    # 12 kept steps on 3 then 2 devices, and the 2 lost ones (on 3 devices): all paid for.
    kept_j = 5 * 3 * STEP_J + 7 * 2 * STEP_J
    lost_j = 2 * 3 * STEP_J
    assert total["energy_j"] == pytest.approx(kept_j + lost_j)
    assert total["samples"] == 12 * 10


class SlowProbeLauncher(StandInLauncher):
    """Asking about a device that is gone costs a connection timeout, as on a network: records whom
    every availability probe asked about."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: list[list[str]] = []

    def available_devices(self, devices):
        self.asked.append(list(devices))
        return super().available_devices(devices)


def test_a_recovery_onto_the_survivors_asks_only_them_whether_they_are_there(tmp_path):
    """Before, a recovery probed every device of the scenario, the lost one included: on the testbed a
    device whose link was cut cost a 2 s connection timeout before the survivors could resume."""
    launcher = SlowProbeLauncher({"c": [8]})
    metrics = run_with_recovery(job(tmp_path, "dp:a,b,c"), launcher, wait_for_devices_s=1.0)
    assert metrics.recoveries[0]["new_plan"] == "dp:a,b"
    assert launcher.asked == [["a", "b"]]


def test_a_recovery_with_no_survivor_looks_for_other_devices_then_for_the_lost_ones(tmp_path):
    launcher = SlowProbeLauncher({"a": [3]}, returns_after_s=0.0)
    metrics = run_with_recovery(job(tmp_path, "local:a"), launcher, wait_for_devices_s=1.0)
    assert metrics.recoveries[0]["new_plan"] == "local:b"  # the first other device there
    assert launcher.asked == [["b", "c"]]  # nobody left of the plan to ask first


def test_it_gives_up_after_the_maximum_number_of_recoveries(tmp_path):
    # Every device blinks off at step 2 of every attempt and is back at once: no attempt gets further.
    launcher = StandInLauncher({d: [2] * 5 for d in "abc"}, returns_after_s=0.0)
    with pytest.raises(RunError, match="gave up after 2 recoveries"):
        run_with_recovery(job(tmp_path, "dp:a,b,c"), launcher, max_recoveries=2, wait_for_devices_s=1.0)
    assert launcher.started_plans == ["dp:a", "dp:a", "dp:a"]  # the first try and two recoveries


def test_it_waits_for_a_device_to_return_then_gives_up_after_the_wait(tmp_path):
    # Every device vanishes at once and none returns.
    launcher = StandInLauncher({"a": [3], "b": [3], "c": [3]})
    started = time.monotonic()
    with pytest.raises(RunError, match="no plan can run on the devices still available"):
        run_with_recovery(job(tmp_path, "dp:a,b,c"), launcher, wait_for_devices_s=1.5)
    assert 1.5 <= time.monotonic() - started < 10


def test_a_device_that_returns_within_the_wait_takes_part_again(tmp_path):
    """Before: lost devices were never taken back, so losing every device failed after the wait even
    when they all came back a second later."""
    launcher = StandInLauncher({"a": [3], "b": [3], "c": [3]}, returns_after_s=0.8)
    metrics = run_with_recovery(job(tmp_path, "dp:a,b,c"), launcher, wait_for_devices_s=5.0)
    assert [s["step"] for s in metrics.steps][-1] == 12
    (recovery,) = metrics.recoveries
    assert recovery["new_plan"] == "dp:a,b,c" and recovery["resumed_from_step"] == 0


def test_lost_steps_count_in_every_device_total():
    metrics = RunMetrics(plan="dp:a,b", scenario="tiny", devices=["a", "b"], batch_size=10)
    for step in (1, 2, 1):  # step 1 trained, step 2 trained, then 1 again after a recovery
        for device in ("a", "b"):
            metrics.add_step(device, {"step": step, "loss": 1.0, "loss_weight": 0.5, "time_s": 0.1, "cpu_s": 0.1,
                                      "bytes_sent": 1, "bytes_recv": 1, "energy_j": 3.0, "interval_s": 0.1}, 2)
    out = metrics.to_dict()
    assert [s["step"] for s in out["steps"]] == [1] and [s["step"] for s in out["lost_steps"]] == [2, 1]
    assert out["devices"]["a"]["energy_j"] == pytest.approx(9.0) and out["total"]["energy_j"] == pytest.approx(18.0)
    assert out["total"]["samples"] == 10


def test_a_shard_killed_for_memory_is_reported_as_such_and_the_job_goes_on_without_that_device(tmp_path):
    """The worker tells an OOM kill from its device's cgroup (device/oom.py); the coordinator says so in
    one sentence and recovers on the other devices, the device itself still there."""
    launcher = StandInLauncher({}, out_of_memory={"b": [7]})
    lines = []
    metrics = run_with_recovery(job(tmp_path, "dp:a,b,c"), launcher, progress=lines.append)
    assert [s["step"] for s in metrics.steps] == list(range(1, 13))
    assert launcher.started_plans == ["dp:a", "dp:a"]  # rank 0's device both times: dp:a,b,c then dp:a,c
    (record,) = metrics.recoveries
    assert record["cause"] == "out of memory" and record["devices"] == ["b"] and record["new_plan"] == "dp:a,c"
    assert any("b ran out of memory after step 6 (its kernel killed the shard)" in line for line in lines)


def test_a_recovery_goes_on_from_a_copy_of_the_checkpoint_and_its_step_is_the_copys(tmp_path):
    """A plan that went on in held shards started from a step whose checkpoint was still on its way (its
    shards write it after saying `held`): lost before it arrived, the job resumes from the checkpoint
    that is there (step 15), not from the step it started at (20); and a checkpoint that lands at the
    same path later does not change the step under the recovery, which goes on from its own copy."""
    from edgetrain.runtime.coordinator.recovery import _resume_point
    from edgetrain.runtime.training.checkpoint import load_checkpoint
    path = str(tmp_path / "episode.pt")
    save_checkpoint(path, step=15, seed=0, model_cfg=SCENARIO.model, corpus="stand-in", model_state={}, optim_state={})
    metrics = RunMetrics(plan="", scenario=SCENARIO.name, devices=[], batch_size=10, start_step=20)
    job = Job(scenario=SCENARIO, plan=Plan.parse("dp:a,b"), steps=20, run_dir=tmp_path / "run", resume=path,
              checkpoint_out=path)
    resume_from, step = _resume_point(metrics, job, 0)
    assert step == 15 and resume_from != path
    save_checkpoint(path, step=20, seed=0, model_cfg=SCENARIO.model, corpus="stand-in", model_state={}, optim_state={})
    assert load_checkpoint(resume_from)["step"] == 15
    # Nothing saved at all yet: from the start.
    assert _resume_point(metrics, Job(scenario=SCENARIO, plan=Plan.parse("dp:a,b"), steps=20, run_dir=tmp_path / "r2",
                                      checkpoint_out=str(tmp_path / "none.pt")), 0) == (None, 0)
