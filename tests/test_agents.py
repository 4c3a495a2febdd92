"""Learning a policy: MaskablePPO on the simulator, TensorBoard logs, SB3 and ONNX exports that agree."""

import numpy as np
import pytest

from conftest import run_cli
from envs.edgetrain_env import EdgeTrainEnv


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("policy")
    logs = tmp_path_factory.mktemp("logs")
    result = run_cli("train", "--timesteps", "1024", "--n-envs", "2", "--n-steps", "128", "--batch-size", "64",
                     "--n-epochs", "2", "--seed", "3", "--out", str(out), "--logdir", str(logs), "--no-progress",
                     "--checkpoint-every", "512", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, logs


def test_training_leaves_policy_files_checkpoints_and_a_tensorboard_run(trained):
    out, logs = trained
    assert (out / "policy.zip").stat().st_size > 0 and (out / "policy.onnx").stat().st_size > 0
    assert list((out / "checkpoints").glob("policy_*_steps.zip"))
    (run,) = [p for p in logs.iterdir() if p.is_dir()]
    assert run.name.startswith("smart-home__maskableppo__3__")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"sched/zeus_cost_per_sample", "sched/energy_per_sample_j", "train/loss"} <= scalars


def test_onnx_and_sb3_policies_choose_the_same_actions(trained):
    from agents.train import OnnxPolicy
    from sb3_contrib import MaskablePPO
    out, _ = trained
    model = MaskablePPO.load(out / "policy.zip", device="cpu")
    onnx = OnnxPolicy(out / "policy.onnx")
    env = EdgeTrainEnv()
    obs, _ = env.reset(seed=11)
    compared = 0
    for _ in range(200):
        mask = env.action_masks()
        sb3_action, _ = model.predict(obs, action_masks=mask, deterministic=True)
        onnx_action = onnx.predict(obs, mask)
        assert np.array_equal(np.asarray(sb3_action), onnx_action)
        compared += 1
        obs, _, terminated, _, _ = env.step(sb3_action)
        if terminated:
            obs, _ = env.reset()
    assert compared == 200
