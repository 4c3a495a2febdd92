"""`edgetrain deploy` on real worker daemons: three workers on loopback, started as separate processes,
a cluster file, a calibration measured on them and a policy trained for them. One device leaves mid-run;
the job must still reach its target with every checkpointed step kept."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from conftest import REPO, TESTS, run_cli
from edgetrain.core.secrets import write_secret

SCENARIO = TESTS / "data" / "home-cluster.yaml"
DEVICES = ("a", "b", "c")


def _free_ports(count: int) -> list[int]:
    import socket
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _wait_listening(port: int, timeout_s: float = 60.0) -> None:
    import socket
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"no worker listening on port {port}")


def _kill_device(worker: subprocess.Popen) -> None:
    """The device leaves: its worker and every shard it started die at once."""
    family = [worker.pid] + [p.pid for p in psutil.Process(worker.pid).children(recursive=True)]
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    worker.wait()


# A worker on a board of its own: the token is read, then a fresh tmpfs hides pytest's whole temporary
# folder ($6: every folder of the coordinator: run dirs, checkpoints, the other workers' files; the code
# and its virtual environment live elsewhere and stay visible); the token is written inside, and the
# worker's folder is there too.
PRIVATE_WORKER = """set -e
secret=$(cat "$2")
mount -t tmpfs -o mode=700 private "$6"
if [ -e "$5" ]; then echo "the coordinator's folder is visible" >&2; exit 3; fi
umask 077
printf '%s' "$secret" > "$6/token"
exec "$1" -m edgetrain worker --listen "127.0.0.1:$3" --token-file "$6/token" --device "$4" --socket-ifname lo \
    --workdir "$6/work"
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    write_secret(root / "token", os.urandom(32).hex())
    ports = _free_ports(len(DEVICES))
    workers = {}
    for device, port in zip(DEVICES, ports):
        # Each device in its own mount namespace with a private folder, as separate boards would be: it
        # cannot see the coordinator's folders, nor the others'.
        workers[device] = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", PRIVATE_WORKER, "sh", sys.executable,
             str(root / "token"), str(port), device, str(root), str(tmp_path_factory.getbasetemp())],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(root / f"worker-{device}.log", "w"))
    for port in ports:
        _wait_listening(port)
    lines = [f"scenario: {SCENARIO}", "token_file: token", "devices:"]
    lines += [f"  {device}: {{address: 127.0.0.1:{port}, socket_ifname: lo}}" for device, port in zip(DEVICES, ports)]
    (root / "cluster.yaml").write_text("\n".join(lines) + "\n")
    yield root, workers
    for worker in workers.values():
        if worker.poll() is None:
            _kill_device(worker)


def test_deploy_on_a_loopback_cluster_finishes_the_job_when_a_device_leaves(cluster, tmp_path):
    root, workers = cluster
    cluster_file = str(root / "cluster.yaml")
    calibrated = run_cli("calibrate", "--cluster", cluster_file, "--out", str(root / "calibration.json"),
                         "--run-dir", str(root / "calibrate"), timeout=600)
    assert calibrated.returncode == 0, calibrated.stderr[-3000:]
    trained = run_cli("train", "--scenario", str(SCENARIO), "--calibration", str(root / "calibration.json"), "--timesteps",
                      "512", "--n-envs", "2", "--n-steps", "128", "--batch-size", "64", "--n-epochs", "2",
                      "--decision-steps", "20", "--imitate-steps", "2000", "--out", str(root / "policy"), "--logdir", str(tmp_path / "logs"),
                      "--no-progress", timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]

    out = tmp_path / "deploy"
    deploy = subprocess.Popen(
        [sys.executable, "-m", "edgetrain", "deploy", "--policy", str(root / "policy" / "policy.onnx"),
         "--cluster", cluster_file, "--calibration", str(root / "calibration.json"), "--decision-steps", "20",
         "--checkpoint-every", "5", "--out", str(out), "--logdir", str(tmp_path / "logs")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr_lines, victim = [], None
    for line in deploy.stderr:  # the progress lines, as they come
        stderr_lines.append(line)
        # The second decision's plan starts: after half a second of training, one of its devices leaves.
        # (A plan the policy keeps goes on in the same shards: "continuing PLAN for N steps from step 20".)
        if victim is None and line.startswith("starting ") and " from step 20)" in line:
            plan = line.split(" for ")[1].split(" (")[0]
        elif victim is None and line.startswith("continuing ") and " from step 20 " in line:
            plan = line.split()[1]
        else:
            plan = None
        if plan is not None:
            victim = plan.split(":")[1].split(",")[-1]
            time.sleep(0.5)
            _kill_device(workers[victim])
    stdout = deploy.stdout.read()
    assert deploy.wait(timeout=600) == 0, "".join(stderr_lines)[-4000:]
    assert victim is not None, "the second decision never started"

    import json
    report = json.loads((out / "metrics.json").read_text())
    steps_needed = -(-2400 // 24)
    # Training reached the target, and the final model holds every step: 1..100 each trained once in
    # the kept history (a recovery re-trains only steps after the last checkpoint).
    assert [s["step"] for s in report["steps"]] == list(range(1, steps_needed + 1))
    assert report["completed"] and report["total"]["samples"] == 2400
    assert len(report["recoveries"]) >= 1
    saved = sorted({step for d in report["decisions"] for step in d["checkpoints"]})
    for recovery in report["recoveries"]:
        assert victim in recovery["devices"]
        # It went on from the last checkpoint that reached the coordinator before the loss: no checkpointed
        # step was lost. Checkpoints travel from the plan's first device to the coordinator; when that
        # device is the victim, the checkpoint it was sending when it died may be lost with it (one interval).
        last_saved = max(s for s in saved if s <= recovery["step"])
        if recovery["old_plan"].split(":")[1].split(",")[0] == victim:
            assert last_saved - 5 <= recovery["resumed_from_step"] <= last_saved
        else:
            assert recovery["resumed_from_step"] == last_saved
    # After it left, the victim was never offered to the policy again, nor in any plan that ran.
    left_at = next(d["decision"] for d in report["decisions"] if d["failures"])
    for decision in report["decisions"][left_at + 1:]:
        assert victim not in decision["available"]
        assert all(victim not in plan.split(":")[1].split(",") for plan in decision["ran"])
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == steps_needed
    losses = [s["loss"] for s in report["steps"]]
    assert losses[-1] < losses[0]  # it really trained
    assert Path(report["tensorboard"]).is_dir() and "checkpoint" in stdout

    # The same samples on one device, start to end: the deployed job, across plan changes and a
    # recovery, trained the very same model (losses of every step, final weights and AdamW state).
    reference, reference_metrics = tmp_path / "one-device.pt", tmp_path / "one-device.json"
    alone = run_cli("run", "--scenario", str(SCENARIO), "--plan", "local:a", "--steps", str(steps_needed),
                    "--checkpoint", str(reference), "--checkpoint-every", "0", "--metrics-out", str(reference_metrics),
                    "--run-dir", str(tmp_path / "one-device"), timeout=600)
    assert alone.returncode == 0, alone.stderr[-3000:]
    one_device = [s["loss"] for s in json.loads(reference_metrics.read_text())["steps"]]
    assert len(one_device) == len(losses)
    for step, (got, want) in enumerate(zip(losses, one_device), start=1):
        assert abs(got - want) <= 1e-3 * abs(want), (step, got, want)
    want = torch.load(reference, weights_only=True)
    for name, weight in want["model"].items():
        assert float((checkpoint["model"][name] - weight).norm() / weight.norm()) <= 1e-4, name
    for name, moments in want["optimizer"]["state"].items():
        for moment in ("exp_avg", "exp_avg_sq"):
            mine = checkpoint["optimizer"]["state"][name][moment]
            assert float((mine - moments[moment]).norm() / moments[moment].norm().clamp_min(1e-30)) <= 1e-4, name
