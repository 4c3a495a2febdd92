"""Real training: one OS process per device, joined by torch.distributed over gloo."""

import json

import pytest

from conftest import TINY, run_cli
from edgetrain.core.errors import PlanError
from edgetrain.core.plans import Plan
from edgetrain.core.scenario import load_scenario
from edgetrain.runtime.coordinator.job import Job, run_job
from edgetrain.runtime.coordinator.launcher import LocalLauncher

STEPS = 5


def train(plan: str, steps: int, tmp_path, **kwargs):
    job = Job(scenario=load_scenario(TINY), plan=Plan.parse(plan), steps=steps,
              run_dir=tmp_path / plan.replace(":", "_").replace(",", "_"), **kwargs)
    return run_job(job, LocalLauncher())


@pytest.fixture(scope="module")
def local_losses(tmp_path_factory):
    return train("local:a", 2 * 3, tmp_path_factory.mktemp("local")).losses


def assert_close(losses, reference):
    assert len(losses) == len(reference)
    for got, want in zip(losses, reference):
        assert abs(got - want) <= 1e-3 * abs(want), (losses, reference)


@pytest.mark.parametrize("plan", ["dp:a,b", "dp:a,b,c", "pp:a,b", "pp:a,b,c", "tp:a,b", "tp:a,b,c",
                                  "sp:a,b", "sp:a,b,c"])
def test_every_plan_trains_exactly_like_one_device(plan, local_losses, tmp_path):
    metrics = train(plan, STEPS, tmp_path)
    assert_close(metrics.losses, local_losses[:STEPS])
    assert local_losses[STEPS - 1] < local_losses[0]  # it really learns


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
    total = metrics["total"]
    assert total["samples"] == 3 * 10
    assert total["energy_j"] == pytest.approx(sum(s["energy_j"] for s in metrics["steps"]))
    assert total["energy_j"] == pytest.approx(sum(d["energy_j"] for d in metrics["devices"].values()))
    assert total["energy_per_sample_j"] == pytest.approx(total["energy_j"] / 30)
    assert total["time_per_sample_s"] == pytest.approx(total["time_s"] / 30)
    # The laptop idles at more watts than the Pi; over the same wall time it must spend more.
    assert metrics["devices"]["a"]["energy_j"] > metrics["devices"]["c"]["energy_j"]


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


def test_worker_daemons_reuse_their_warm_shard_processes_across_plans(local_losses, tmp_path):
    """Three workers on loopback run dp, then pp from its checkpoint, in the same warm processes: the
    second plan imports nothing, and training goes on exactly as on one device."""
    import socket
    import threading
    import time

    from edgetrain.runtime.coordinator.remote import RemoteLauncher
    from edgetrain.runtime.device.worker import Worker
    token = b"reuse-test-token-0123456789abcdef"
    workers = {}
    for device in ("a", "b", "c"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        workers[device] = Worker(device, ("127.0.0.1", port), token, socket_ifname="lo")
        threading.Thread(target=workers[device].serve_forever, daemon=True).start()
    launcher = RemoteLauncher({d: w.listen for d, w in workers.items()}, token)
    try:
        deadline = time.monotonic() + 60
        while len(launcher.available_devices(list(workers))) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        checkpoint = str(tmp_path / "ckpt.pt")
        scenario = load_scenario(TINY)
        first = run_job(Job(scenario=scenario, plan=Plan.parse("dp:a,b,c"), steps=3, run_dir=tmp_path / "one",
                            checkpoint_out=checkpoint, socket_ifnames={d: "lo" for d in workers}), launcher)
        deadline = time.monotonic() + 10  # each process tears its process group down, then is warm again
        while any(w._spare is None for w in workers.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        warm = {d: w._spare.pid for d, w in workers.items()}
        second = run_job(Job(scenario=scenario, plan=Plan.parse("pp:a,b,c"), steps=3, run_dir=tmp_path / "two",
                             resume=checkpoint, socket_ifnames={d: "lo" for d in workers}), launcher)
        deadline = time.monotonic() + 10
        while any(w._spare is None for w in workers.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        # The same processes ran the second plan. Now and then gloo's teardown of a process group stalls,
        # and the worker then replaces that process after a grace period: allow one such replacement.
        reused = sum(w._spare.pid == warm[d] for d, w in workers.items())
        assert reused >= 2, f"only {reused} of 3 warm processes were reused"
        assert_close(first.losses + second.losses, local_losses)
    finally:
        launcher.close()
        for worker in workers.values():
            worker.shutdown()


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
