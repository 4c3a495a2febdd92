"""Real training: one OS process per device, joined by torch.distributed over gloo."""

import contextlib
import json
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY, run_cli
from edgetrain.core.errors import PlanError
from edgetrain.core.plans import Plan
from edgetrain.core.scenario import load_scenario
from edgetrain.runtime.coordinator.job import Job, run_job
from edgetrain.runtime.coordinator.launcher import LocalLauncher
from edgetrain.runtime.training.checkpoint import load_checkpoint

STEPS = 5


def train(plan: str, steps: int, tmp_path, **kwargs):
    job = Job(scenario=load_scenario(TINY), plan=Plan.parse(plan), steps=steps,
              run_dir=tmp_path / plan.replace(":", "_").replace(",", "_").replace("/", "_"), **kwargs)
    return run_job(job, LocalLauncher())


@pytest.fixture(scope="module")
def local_losses(tmp_path_factory):
    return train("local:a", 2 * 3, tmp_path_factory.mktemp("local")).losses


@pytest.fixture(scope="module")
def local_state(tmp_path_factory):
    """The one-device model and AdamW state after STEPS steps: what every plan must end with."""
    path = str(tmp_path_factory.mktemp("local-state") / "local.pt")
    train("local:a", STEPS, tmp_path_factory.mktemp("local-run"), checkpoint_out=path)
    return load_checkpoint(path)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm().clamp_min(1e-30))


def assert_same_state(path: str, reference: dict, tolerance: float = 1e-4) -> None:
    """Weights and optimizer state (step, exp_avg, exp_avg_sq of every parameter) as on one device, each
    tensor within `tolerance` relative error (plans agree to about 1e-6: float sums in another order).
    Lost AdamW state on a resume, or a mis-weighted share of an uneven batch, is off by percents and
    shows here even where the losses of a few steps hide it."""
    got = load_checkpoint(path)
    assert got["step"] == reference["step"]
    assert set(got["model"]) == set(reference["model"])
    for name, weight in reference["model"].items():
        assert relative_error(got["model"][name], weight) <= tolerance, name
    assert set(got["optimizer"]["state"]) == set(reference["optimizer"]["state"])
    for name, moments in reference["optimizer"]["state"].items():
        mine = got["optimizer"]["state"][name]
        assert float(mine["step"]) == float(moments["step"]), name
        for moment in ("exp_avg", "exp_avg_sq"):
            assert relative_error(mine[moment], moments[moment]) <= tolerance, (name, moment)


def assert_close(losses, reference):
    assert len(losses) == len(reference)
    for got, want in zip(losses, reference):
        assert abs(got - want) <= 1e-3 * abs(want), (losses, reference)


@pytest.mark.parametrize("plan", ["dp:a,b", "dp:a,b,c", "pp:a,b", "pp:a,b,c", "tp:a,b", "tp:a,b,c",
                                  "sp:a,b", "sp:a,b,c",
                                  # Uneven stages, a data-parallel group first or last, micro-batches whose
                                  # rows do not split evenly in the group (10 rows, 3 micro-batches).
                                  "hybrid:a+b=2/c=1", "hybrid:c=1/b+a=2@3"])
def test_every_plan_trains_exactly_like_one_device(plan, local_losses, local_state, tmp_path):
    checkpoint = str(tmp_path / "end.pt")
    metrics = train(plan, STEPS, tmp_path, checkpoint_out=checkpoint)
    assert_close(metrics.losses, local_losses[:STEPS])
    assert local_losses[STEPS - 1] < local_losses[0]  # it really learns
    assert_same_state(checkpoint, local_state)


def test_a_checkpoint_resumes_on_another_plan(local_losses, tmp_path):
    checkpoint = str(tmp_path / "ckpt.pt")
    first = train("dp:a,b,c", 3, tmp_path, checkpoint_out=checkpoint)
    second = train("pp:c,a", 3, tmp_path, resume=checkpoint, checkpoint_out=str(tmp_path / "ckpt2.pt"))
    assert [s["step"] for s in second.steps] == [4, 5, 6]
    assert_close(first.losses + second.losses, local_losses)


def test_metrics_measure_time_traffic_and_energy_per_device(tmp_path):
    out = tmp_path / "metrics.json"
    result = run_cli("run", "--scenario", TINY, "--plan", "dp:a,b,c", "--steps", "3", "--metrics-out", str(out),
                     "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(out.read_text())
    assert metrics["plan"] == "dp:a,b,c"
    assert [s["step"] for s in metrics["steps"]] == [1, 2, 3]
    # DDP all-reduces every gradient each step: each device sends at least (n-1)/n of the model's bytes.
    params = 256 * 48 * 2 + 24 * 48 + 3 * (4 * 48 * 48 + 2 * 48 * 192 + 192 + 48 + 4 * 48) + 2 * 48
    for name, device in metrics["devices"].items():
        assert device["meter"] == "profile"
        assert device["cpu_source"] == "process"
        assert device["bytes_sent"] >= 3 * params * 4 * 2 / 3, name
        assert device["bytes_recv"] >= 3 * params * 4 * 2 / 3, name
        assert device["cpu_s"] > 0 and device["energy_j"] > 0
    # Each device's start of the plan, in parts that add up to at most the whole (the rest: the meter's
    # set-up and the event itself); the one-device model's build is one of them.
    (plan,) = metrics["plans"]
    assert set(plan["startup_s"]) == {"a", "b", "c"}
    for name, parts in plan["startup_s"].items():
        assert {"corpus_s", "checkpoint_load_s", "rendezvous_s", "build_s", "meter_s"} <= set(parts), name
        assert 0 < sum(v for k, v in parts.items() if k != "total") <= parts["total"] + 1e-6, name
        assert parts["total"] == pytest.approx(metrics["devices"][name]["startup_s"])
    total = metrics["total"]
    assert total["samples"] == 3 * 10
    assert total["energy_j"] == pytest.approx(sum(s["energy_j"] for s in metrics["steps"]))
    assert total["energy_j"] == pytest.approx(sum(d["energy_j"] for d in metrics["devices"].values()))
    assert total["energy_per_sample_j"] == pytest.approx(total["energy_j"] / 30)
    assert total["time_per_sample_s"] == pytest.approx(total["time_s"] / 30)
    # The laptop idles at more watts than the Pi; over the same wall time it must spend more.
    assert metrics["devices"]["a"]["energy_j"] > metrics["devices"]["c"]["energy_j"]
    # Each device against bounds from its catalog profile alone: at least its idle power over the wall time
    # of its steps, at most its active power over that time plus its radio's energy for the bytes moved.
    from edgetrain.core.catalog import get_profile
    scenario = load_scenario(TINY)
    for name, device in metrics["devices"].items():
        power = get_profile(scenario.device(name).profile)
        wall_s = sum(s["devices"][name]["interval_s"] for s in metrics["steps"])
        radio_j = (power.radio_tx_j_per_byte.value * device["bytes_sent"]
                   + power.radio_rx_j_per_byte.value * device["bytes_recv"])
        assert power.idle_power_w.value * wall_s * (1 - 1e-9) <= device["energy_j"], name
        assert device["energy_j"] <= power.active_power_w.value * wall_s + radio_j + 1e-9, name


@pytest.mark.parametrize("args, message", [
    (["--plan", "tp:laptop,orin-nano,pi4,phone"], "6 attention heads are not divisible by the tensor-parallel degree 4"),
    (["--plan", "sp:laptop,orin-nano,pi4,phone,xavier-nx"], "seq_len 96 is not divisible by the sequence-parallel degree 5"),
    (["--plan", "pp:laptop,orin-nano,pi4,phone,xavier-nx"], "5 pipeline stages are more than the model's 4 layers"),
    (["--plan", "dp:laptop,toaster"], "unknown device 'toaster'"),
    (["--plan", "zz:laptop"], "unknown plan kind 'zz'"),
])
def test_infeasible_plans_are_refused_before_any_process_starts(args, message, tmp_path):
    result = run_cli("run", *args, "--steps", "1", "--run-dir", str(tmp_path / "run"), timeout=60)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_model_too_big_for_a_device_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(open(TINY).read().replace("layers: 3, d_model: 48", "layers: 3, d_model: 1536")
                   .replace("cpu_share: 0.2, bandwidth_mbps: 20}", "cpu_share: 0.2, bandwidth_mbps: 20, memory_mb: 600}"))
    with pytest.raises(PlanError, match=r"does not fit c: it needs about \d+ MiB, the device has 600 MiB"):
        from edgetrain.core.feasibility import check_plan
        check_plan(Plan.parse("dp:a,c"), load_scenario(str(big)))


@contextlib.contextmanager
def loopback_workers(token: bytes, workdir):
    """Three worker daemons (a, b, c) on loopback in this process, their shard processes kept warm
    between plans, each with its own folder under `workdir` (checkpoints travel over the control plane);
    yields the workers and a launcher connected to all three."""
    from edgetrain.runtime.coordinator.remote import RemoteLauncher
    from edgetrain.runtime.device.worker import Worker
    workers = {}
    for device in ("a", "b", "c"):
        listening = threading.Event()
        # Port 0: the system picks a free port as it binds (a port found free first may be taken by the
        # time the worker binds it: a gloo master port of an earlier test, say).
        workers[device] = Worker(device, ("127.0.0.1", 0), token, socket_ifname="lo",
                                 workdir=str(Path(workdir) / device),
                                 on_listening=lambda host, port, w=device, ready=listening: (
                                     setattr(workers[w], "listen", (host, port)), ready.set()))
        threading.Thread(target=workers[device].serve_forever, daemon=True).start()
        assert listening.wait(10), f"worker {device} did not start listening"
    launcher = RemoteLauncher({d: w.listen for d, w in workers.items()}, token)
    try:
        deadline = time.monotonic() + 60
        while len(launcher.available_devices(list(workers))) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield workers, launcher
    finally:
        launcher.close()
        for worker in workers.values():
            worker.shutdown()


def test_worker_daemons_reuse_their_warm_shard_processes_across_plans(local_losses, tmp_path):
    """Three workers on loopback run dp, then pp from its checkpoint, in the same warm processes: the
    second plan imports nothing, and training goes on exactly as on one device."""
    with loopback_workers(b"reuse-test-token-0123456789abcdef", tmp_path / "devices") as (workers, launcher):
        checkpoint = str(tmp_path / "ckpt.pt")
        scenario = load_scenario(TINY)
        first = run_job(Job(scenario=scenario, plan=Plan.parse("dp:a,b,c"), steps=3, run_dir=tmp_path / "one",
                            checkpoint_out=checkpoint, socket_ifnames={d: "lo" for d in workers}), launcher)
        deadline = time.monotonic() + 10  # each process tears its process group down, then is warm again
        while any(not w._spares for w in workers.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        warm = {d: w._spares[-1].pid for d, w in workers.items()}
        second = run_job(Job(scenario=scenario, plan=Plan.parse("pp:a,b,c"), steps=3, run_dir=tmp_path / "two",
                             resume=checkpoint, socket_ifnames={d: "lo" for d in workers}), launcher)
        deadline = time.monotonic() + 10
        while any(not w._spares for w in workers.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        # The same processes ran the second plan. Now and then gloo's teardown of a process group stalls,
        # and the worker then replaces that process after a grace period: allow one such replacement.
        reused = sum(w._spares[-1].pid == warm[d] for d, w in workers.items())
        assert reused >= 2, f"only {reused} of 3 warm processes were reused"
        assert_close(first.losses + second.losses, local_losses)


def test_a_kept_plan_goes_on_in_the_same_processes_and_trains_exactly_like_one_device(local_losses, tmp_path):
    """Before: every decision restarted the shards (2.0-2.7 s per decision for 1.95 s of training). A
    held plan the next job keeps goes on in the same process group (no start, no checkpoint reload); a
    job on another plan releases it and starts afresh; the losses are those of one device throughout."""
    from edgetrain.runtime.coordinator.job import PlanSession
    with loopback_workers(b"hold-test-token-0123456789abcdef", tmp_path / "devices") as (workers, launcher):
        checkpoint = str(tmp_path / "ckpt.pt")
        scenario = load_scenario(TINY)
        session = PlanSession()
        lines: list[str] = []

        def job(plan: str, steps: int, resume):
            return Job(scenario=scenario, plan=Plan.parse(plan), steps=steps, run_dir=tmp_path / "runs",
                       resume=resume, checkpoint_out=checkpoint, socket_ifnames={d: "lo" for d in workers}, hold=True)

        first = run_job(job("dp:a,b", 2, None), launcher, lines.append, session=session)
        running = {d: [p.pid for p in workers[d]._shards.values()] for d in ("a", "b")}
        assert all(running.values()) and session.held is not None and session.held.step == 2
        second = run_job(job("dp:a,b", 2, checkpoint), launcher, lines.append, session=session)
        assert {d: [p.pid for p in workers[d]._shards.values()] for d in ("a", "b")} == running
        assert any(line.startswith("continuing dp:a,b for 2 steps from step 2") for line in lines)
        assert sum(line.startswith("starting ") for line in lines) == 1
        assert second.startup_s == {"a": 0.0, "b": 0.0}
        third = run_job(job("pp:c,a", 2, checkpoint), launcher, lines.append, session=session)
        assert sum(line.startswith("starting ") for line in lines) == 2
        # A held plan says `held` before it writes its last step's checkpoint, which then travels while the
        # coordinator decides, and a kept plan goes on without waiting for it: each checkpoint is heard of
        # once, by the job that is following the plan when it lands (the one that wrote it, when its
        # other rank said `held` later; else the next: the kept plan's, or a new plan's on release).
        assert [c["step"] for m in (first, second, third) for c in m.checkpoints] == [2, 4]
        assert third.start_step == 4
        assert workers["b"]._shards == {}  # released: b is not in the new plan
        session.release()
        assert all(w._shards == {} for w in workers.values())
        assert_close(first.losses + second.losses + third.losses, local_losses)


def test_a_recovering_job_keeps_a_standby_process_that_imports_at_low_priority_and_trains_at_full(tmp_path):
    """Before: a recovery waited for fresh processes to import torch under the device's CPU share (9.2 s
    to resume on the testbed). A job that can recover asks each device for a standby process, started at
    nice 19 beside the shard when no other warm process is left; a plan that later runs in it (here: the
    plan's own process is gone, as after a failure) runs at the worker's own priority. The plan's process,
    ended cleanly, stays warm beside the standby, and the next plan runs in it: a switch imports nothing
    (before: every new plan made a new standby, whose import beside the shard took half of an emulated
    device's CPU quota and doubled its first steps)."""
    import os

    from edgetrain.runtime.coordinator.job import PlanSession
    with loopback_workers(b"standby-test-token-0123456789abcdef", tmp_path / "devices") as (workers, launcher):
        scenario = load_scenario(TINY)

        def job(name: str, hold: bool = False) -> Job:
            return Job(scenario=scenario, plan=Plan.parse("dp:a,b"), steps=2, run_dir=tmp_path / name,
                       socket_ifnames={d: "lo" for d in workers}, standby=True, hold=hold)

        def settled() -> None:
            deadline = time.monotonic() + 10
            while any(w._finishing or len(w._spares) < 2 for w in workers.values()) and time.monotonic() < deadline:
                time.sleep(0.05)

        run_job(job("one"), launcher)
        settled()
        standby = {d: workers[d]._spares[0] for d in ("a", "b")}
        trained = {d: workers[d]._spares[1].pid for d in ("a", "b")}
        for process in standby.values():
            assert process.poll() is None and os.getpriority(os.PRIO_PROCESS, process.pid) == 19
        # A switch: the next plan runs in the warm process of the last one; the standby stays, nothing imports.
        run_job(job("two"), launcher)
        settled()
        for device in ("a", "b"):
            assert [p.pid for p in workers[device]._spares] == [standby[device].pid, trained[device]]
        # The last plan's process is gone (as after a failure): the next plan runs in the standby, at full priority.
        for device in ("a", "b"):
            workers[device]._spares[1].kill()
            workers[device]._spares[1].wait()
        session = PlanSession()
        run_job(job("three", hold=True), launcher, session=session)
        try:
            for device, process in standby.items():
                assert [p.pid for p in workers[device]._shards.values()] == [process.pid]
                assert os.getpriority(os.PRIO_PROCESS, process.pid) == os.getpriority(os.PRIO_PROCESS, 0)
        finally:
            session.release()


def test_run_resume_goes_on_from_the_checkpoint_on_the_same_text_and_refuses_other_text(tmp_path):
    """Before: --resume with another --data went on silently with batches of other text."""
    checkpoint = tmp_path / "first.pt"
    first = run_cli("run", "--scenario", TINY, "--plan", "local:a", "--steps", "2", "--checkpoint", str(checkpoint),
                    "--run-dir", str(tmp_path / "first"))
    assert first.returncode == 0, first.stderr[-2000:]
    metrics = tmp_path / "same.json"
    same = run_cli("run", "--scenario", TINY, "--plan", "dp:a,b", "--steps", "1", "--resume", str(checkpoint),
                   "--run-dir", str(tmp_path / "same"), "--metrics-out", str(metrics))
    assert same.returncode == 0, same.stderr[-2000:]
    assert [s["step"] for s in json.loads(metrics.read_text())["steps"]] == [3]
    other = tmp_path / "other.txt"
    other.write_text("entirely different training text, " * 400)
    refused = run_cli("run", "--scenario", TINY, "--plan", "local:a", "--steps", "1", "--resume", str(checkpoint),
                      "--data", str(other), "--run-dir", str(tmp_path / "other"))
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "was trained on other text" in refused.stderr and "Traceback" not in refused.stderr


@pytest.fixture(scope="module")
def warm_launcher(tmp_path_factory):
    with loopback_workers(b"matrix-test-token-0123456789abcdef", tmp_path_factory.mktemp("devices")) as (_, launcher):
        yield launcher


PLAN_OF_KIND = {"local": "local:b", "dp": "dp:a,b,c", "pp": "pp:c,a", "tp": "tp:a,b,c", "sp": "sp:b,c",
                "hybrid": "hybrid:c+a=1/b=2"}


@pytest.mark.parametrize("saver", list(PLAN_OF_KIND))
def test_a_checkpoint_of_every_kind_resumes_on_every_other_kind_as_on_one_device(saver, warm_launcher, local_losses,
                                                                                 local_state, tmp_path):
    """Before, only dp -> pp was tested. Three steps on `saver`, then the last two on each other kind
    from its checkpoint: the losses and the final weights and AdamW state are the one device's."""
    scenario = load_scenario(TINY)
    lo = {d: "lo" for d in "abc"}
    saved = str(tmp_path / "saved.pt")
    first = run_job(Job(scenario=scenario, plan=Plan.parse(PLAN_OF_KIND[saver]), steps=3, run_dir=tmp_path / "save",
                        checkpoint_out=saved, socket_ifnames=lo), warm_launcher)
    assert_close(first.losses, local_losses[:3])
    for resumer, plan in PLAN_OF_KIND.items():
        if resumer == saver:
            continue
        end = str(tmp_path / f"{resumer}.pt")
        second = run_job(Job(scenario=scenario, plan=Plan.parse(plan), steps=STEPS - 3, run_dir=tmp_path / resumer,
                             resume=saved, checkpoint_out=end, socket_ifnames=lo), warm_launcher)
        assert [s["step"] for s in second.steps] == [4, 5], resumer
        assert_close(second.losses, local_losses[3:STEPS])
        assert_same_state(end, local_state)
