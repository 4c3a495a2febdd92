"""Learning a policy: MaskablePPO on the simulator, TensorBoard logs, SB3 and ONNX exports that agree."""

import numpy as np
import pytest

from conftest import run_cli
from edgetrain.envs.edgetrain_env import EdgeTrainEnv


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("policy")
    logs = tmp_path_factory.mktemp("logs")
    result = run_cli("train", "--scenario", "smart-home", "--timesteps", "1024", "--n-envs", "2", "--n-steps", "128",
                     "--batch-size", "64",
                     "--n-epochs", "2", "--seed", "3", "--out", str(out), "--logdir", str(logs), "--no-progress",
                     "--checkpoint-every", "512", "--imitate-steps", "2000",
                     "--validate-every", "512", "--validation-episodes", "4", timeout=600)
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
    # The references the curve is read against, logged as lines with their spread.
    import json
    references = json.loads((out / "references.json").read_text())
    assert set(references) == {"greedy", "heuristic", "clairvoyant"}
    for name, figures in references.items():
        assert events.Scalars(f"sched/reference/{name}")[-1].value == pytest.approx(figures["mean"], rel=1e-6)
        assert events.Scalars(f"sched/reference/{name}_high")[-1].value == pytest.approx(
            figures["mean"] + figures["std"], rel=1e-6)
    assert references["clairvoyant"]["mean"] <= references["greedy"]["mean"] * 1.02


def test_training_keeps_the_policy_that_validated_best_not_the_last(trained):
    """Validation prices the policy against greedy before PPO's first update and every 512 steps; the
    saved policy is the best of those (re-priced here on the same seeded jobs), and a policy made worse
    afterwards (its action head scrambled) is replaced by the best one when training ends."""
    import json

    import torch
    from sb3_contrib import MaskablePPO

    from edgetrain.agents.train import Task, TrainConfig, ValidationCallback, with_varied_links
    from edgetrain.core.calibration import default_calibration_path, load_calibration
    from edgetrain.core.scenario import load_scenario
    out, _ = trained
    summary = json.loads((out / "validation.json").read_text())
    steps = [h["timesteps"] for h in summary["history"]]
    assert steps[0] == 0 and steps[-1] >= 1024 and len(steps) >= 3
    assert summary["kept_vs_greedy"] == min(h["vs_greedy"] for h in summary["history"])

    scenario = load_scenario("smart-home")
    tasks = with_varied_links([Task(scenario, load_calibration(default_calibration_path(scenario)))])
    from stable_baselines3.common.logger import configure
    model = MaskablePPO.load(out / "policy.zip", device="cpu")
    model.set_logger(configure(None, []))
    check = ValidationCallback(tasks, TrainConfig(seed=3, validation_episodes=4))
    check.init_callback(model)
    check._on_training_start()
    check._validate()
    assert check.history[-1]["vs_greedy"] == pytest.approx(summary["kept_vs_greedy"], rel=1e-9)
    kept = {k: v.clone() for k, v in model.policy.state_dict().items()}
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        for weight in model.policy.action_net.parameters():
            weight.copy_(torch.randn(weight.shape, generator=generator) * 10)
    check._validate()
    assert check.history[-1]["vs_greedy"] > check.history[0]["vs_greedy"]  # a scrambled head chooses worse
    check._on_training_end()
    assert all(torch.equal(v, kept[k]) for k, v in model.policy.state_dict().items())


def test_onnx_and_sb3_policies_choose_the_same_actions(trained):
    from sb3_contrib import MaskablePPO

    from edgetrain.agents.onnx_policy import OnnxPolicy
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


def test_evaluate_compares_the_policy_with_every_baseline_on_the_same_traces(trained, tmp_path):
    import json
    out, logs = trained
    (run,) = [p for p in logs.iterdir() if p.is_dir()]
    report_path = tmp_path / "eval.json"
    result = run_cli("evaluate", "--policy", str(out / "policy.zip"), "--episodes", "2", "--json", str(report_path),
                     "--run", str(run), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    names = {"policy", "random", "all_dp", "fastest_single", "greedy", "heuristic", "lifetime_oracle", "clairvoyant"}
    assert set(report["results"]) == names
    for name, figures in report["results"].items():
        for metric in ("zeus_cost", "energy_per_sample_j", "time_per_sample_s"):
            assert figures[metric] > 0, (name, metric)
        assert figures["failures"] >= 0 and figures["plan_switches"] >= 1
    # Knowing the future never makes the clairvoyant planner worse than picking at random.
    assert report["results"]["clairvoyant"]["zeus_cost"] < report["results"]["random"]["zeus_cost"]
    for png in report["plots"].values():
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert {"tradeoff", "learning_curve"} <= set(report["plots"])
    assert "clairvoyant" in result.stdout and "Zeus cost/sample" in result.stdout
    # Trace by trace against each reference: the mean ratio of the same traces, and the counts add up.
    import re
    per = report["per_episode_zeus_cost"]
    for other in ("greedy", "heuristic", "clairvoyant"):
        line = next(li for li in result.stdout.splitlines() if li.startswith(f"policy / {other}:"))
        ratio = sum(p / o for p, o in zip(per["policy"], per[other])) / 2
        assert f"{ratio:.3f}x" in line
        cheaper, dearer, level = map(int, re.search(r"cheaper on (\d+), dearer on (\d+), level on (\d+)", line).groups())
        assert cheaper + dearer + level == 2


def test_deploy_schedules_with_a_policy_file_or_a_rule_by_name_never_a_clairvoyant_one(trained):
    """`edgetrain deploy --policy` takes the learned policy or a rule a person could run (to compare them
    live); each picks a plan of devices that are there, the file acts as the policy does, and a reference
    that knows the future is refused in one sentence."""
    from sb3_contrib import MaskablePPO

    from edgetrain.agents.baselines import BASELINES
    from edgetrain.agents.deploy import DEPLOYABLE_RULES, scheduler_for
    from edgetrain.core.errors import UserError
    out, _ = trained
    model = MaskablePPO.load(out / "policy.zip", device="cpu")
    env = EdgeTrainEnv()
    schedulers = {name: scheduler_for(name) for name in DEPLOYABLE_RULES}
    references = {name: BASELINES[name](0) for name in DEPLOYABLE_RULES}
    learned = scheduler_for(str(out / "policy.zip"))
    obs, _ = env.reset(seed=21)
    for _ in range(40):
        for name, act in schedulers.items():
            chosen = env.plan_for(act(env, obs))
            assert chosen.plan == env.plan_for(references[name](env, obs)).plan, name
            assert all(env.state.world.available >> i & 1 for i in chosen.slots), (name, chosen.plan)
        expected, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
        assert np.array_equal(np.asarray(learned(env, obs)), np.asarray(expected))
        obs, _, terminated, _, _ = env.step(schedulers["heuristic"](env, obs))
        if terminated:
            obs, _ = env.reset(seed=22)
    for name in ("clairvoyant", "lifetime_oracle"):
        with pytest.raises(UserError, match="future availability"):
            scheduler_for(name)
    with pytest.raises(UserError, match="no such file"):
        scheduler_for("greedyy")


def test_evaluate_refuses_a_missing_policy(tmp_path):
    result = run_cli("evaluate", "--policy", str(tmp_path / "nope.zip"), "--json", str(tmp_path / "e.json"))
    assert result.returncode == 2 and "no such file" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("scenario", ["smart-home", "jetson-lab"])
def test_the_warm_started_policy_plans_like_its_teacher_on_episodes_it_never_saw(trained, scenario):
    """`edgetrain train` first imitates its teacher (by default the lifetime oracle among the offered
    plans); on fresh episodes the policy then picks the teacher's plan most of the time (a policy from
    scratch after so few steps picks at random), also on a fleet and model it never saw (jetson-lab:
    six other devices, slower links, another model; a policy of the slot layout trained on smart-home
    ran dp there where one device alone was cheapest, at 2.6x greedy's cost)."""
    import json

    from sb3_contrib import MaskablePPO

    from edgetrain.agents.train import make_teacher
    out, _ = trained
    imitation = json.loads((out / "imitation.json").read_text())
    assert imitation["decisions"] >= 2000 and imitation["teacher"] == "lifetime_oracle"
    model = MaskablePPO.load(out / "policy.zip", device="cpu")
    teacher = make_teacher("lifetime_oracle", 0)
    env = EdgeTrainEnv(scenario=scenario)
    same = total = 0
    for seed in range(900, 905):
        obs, _ = env.reset(seed=seed)
        for _ in range(40):
            mask = env.action_masks()
            ours, _ = model.predict(obs, action_masks=mask, deterministic=True)
            theirs = teacher(env, obs)
            plan_of = lambda a: env.plan_for(a).plan  # noqa: E731
            same += plan_of(ours) == plan_of(theirs)
            total += 1
            obs, _, terminated, _, _ = env.step(theirs)
            if terminated:
                break
    assert same / total >= 0.8, f"the policy chose the teacher's plan in {same} of {total} decisions"


def test_the_privileged_teacher_picks_the_offer_the_trace_makes_cheapest_and_departs_from_greedy():
    """The lifetime oracle as a teacher chooses among the offered plans only (the student can pick no
    other) the one that costs least until the job ends or a member leaves on the episode's true trace;
    where devices come and go in sessions and switches cost 8 s, that is not always greedy's choice
    (index 0), which is what gives the student something greedy does not know."""
    from edgetrain.agents.baselines import lifetime_cost_per_sample
    from edgetrain.agents.train import make_teacher
    env = EdgeTrainEnv(scenario="smart-home-sessions")
    teacher = make_teacher("lifetime_oracle", 0)
    departures = decisions = 0
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        for _ in range(60):
            action = teacher(env, obs)
            costs = [lifetime_cost_per_sample(env, plan) for plan in env.offered]
            assert 0 <= action < len(env.offered) and costs[action] == min(costs)
            departures += action != 0
            decisions += 1
            obs, _, terminated, _, _ = env.step(action)
            if terminated:
                break
    assert 0 < departures < decisions


def test_the_general_policy_trains_on_every_shipped_scenario_and_fine_tunes_from_its_weights(tmp_path):
    """`edgetrain train` without a scenario trains across the built-in scenarios; `--init` starts a
    scenario's training from that policy (with a learning rate of 0 it stays that policy exactly)."""
    import json

    from sb3_contrib import MaskablePPO
    general, tuned = tmp_path / "general", tmp_path / "tuned"
    common = ["--n-envs", "4", "--n-steps", "64", "--batch-size", "64", "--n-epochs", "1", "--no-progress",
              "--logdir", str(tmp_path / "logs")]
    result = run_cli("train", "--timesteps", "256", "--imitate-steps", "1000", "--out", str(general), *common)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(json.loads((general / "trained_on.json").read_text())) == {
        "smart-home", "smart-home-busy", "smart-home-sessions", "workshop", "jetson-lab", "big-model"}
    result = run_cli("train", "--scenario", "workshop", "--init", str(general / "policy.zip"), "--timesteps", "256",
                     "--learning-rate", "0", "--out", str(tuned), *common)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no imitation" in result.stderr and not (tuned / "imitation.json").exists()
    before = MaskablePPO.load(general / "policy.zip", device="cpu").policy.state_dict()
    after = MaskablePPO.load(tuned / "policy.zip", device="cpu").policy.state_dict()
    for key in before:
        assert np.array_equal(before[key].numpy(), after[key].numpy()), key
    refused = run_cli("train", "--online-steps", "2", "--timesteps", "64", "--out", str(tmp_path / "x"))
    assert refused.returncode == 2 and "pass --scenario" in refused.stderr
