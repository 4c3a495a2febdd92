"""One Zeus cost everywhere: the env's reward, the baselines' predictions and the deployment report
price the same interval the same, with the formula written out here independently; and `max_power` is
the scenario's, also on the sub-fleets of fleet randomisation."""

from pathlib import Path

import numpy as np
import pytest

from edgetrain.agents.baselines import make_greedy, predicted_cost_per_sample
from edgetrain.agents.deploy import _report
from edgetrain.core.catalog import get_profile
from edgetrain.core.scenario import load_scenario
from edgetrain.envs.actions import random_valid_action
from edgetrain.envs.edgetrain_env import EdgeTrainEnv


def by_hand(scenario, energy_j: float, time_s: float) -> float:
    max_power = sum(get_profile(d.profile).active_power_w.value for d in scenario.devices)
    eta = scenario.objective.eta
    return eta * energy_j + (1 - eta) * max_power * time_s


def test_env_baselines_and_deploy_price_an_interval_the_same():
    scenario = load_scenario("smart-home")
    env = EdgeTrainEnv(scenario=scenario)
    obs, _ = env.reset(seed=3)
    greedy = make_greedy()
    costs = []
    for _ in range(25):
        action = greedy(env, obs)
        resolved = env.plan_for(action)
        prediction = resolved.prediction
        assert predicted_cost_per_sample(env, resolved) == pytest.approx(
            by_hand(scenario, prediction.total_energy_j, prediction.step_time_s) / env.batch, rel=1e-12)
        obs, reward, terminated, _, info = env.step(action)
        cost = by_hand(scenario, info["energy_j"], info["time_s"])
        assert info["zeus_cost"] == pytest.approx(cost, rel=1e-12)
        assert reward == pytest.approx(-cost / env.interval_samples, rel=1e-12)
        costs.append(cost)
        if terminated:
            break
    report = _report(scenario, "policy", "sim", env.target, env.decision_steps, Path("run"), [], [], [],
                     info["job"], 0.0, None, False)
    assert report["total"]["zeus_cost"] == pytest.approx(sum(costs), rel=1e-9)
    assert report["total"]["zeus_cost_per_sample"] == pytest.approx(sum(costs) / info["job"].samples, rel=1e-9)


def test_sub_fleets_are_rewarded_on_the_scenario_s_scale():
    scenario = load_scenario("smart-home")
    env = EdgeTrainEnv(scenario=scenario, vary_fleet=True)
    rng = np.random.default_rng(0)
    smaller = 0
    for seed in range(100):
        env.reset(seed=seed)
        smaller += env.n < len(scenario.devices)
        _, reward, _, _, info = env.step(random_valid_action(env.action_masks(), rng))
        assert reward == pytest.approx(-by_hand(scenario, info["energy_j"], info["time_s"]) / env.interval_samples,
                                       rel=1e-12)
    assert smaller > 5  # sub-fleets were dealt, and priced on the whole scenario's max power
