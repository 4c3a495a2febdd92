"""The plans EdgeTrain-v0 offers, and the features a job-aware policy reads: greedy's plan first, a way
out for every member of it, keeping the current plan, risks that grow with a device's age where its
sessions have a typical length, and refusing a policy saved for another layout."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from conftest import TINY_CALIBRATION, run_cli
from edgetrain.agents.baselines import make_greedy
from edgetrain.core.availability import leave_probability
from edgetrain.core.config import Availability
from edgetrain.core.scenario import load_scenario
from edgetrain.envs.candidates import CANDIDATE_FEATURES, MAX_CANDIDATES
from edgetrain.envs.edgetrain_env import EdgeTrainEnv


def _rows(obs):
    return obs[: MAX_CANDIDATES * CANDIDATE_FEATURES].reshape(MAX_CANDIDATES, CANDIDATE_FEATURES)


@pytest.mark.parametrize("name", ["smart-home", "smart-home-busy", "workshop", "jetson-lab"])
def test_the_offer_starts_with_greedy_s_plan_and_has_a_way_out_for_each_of_its_devices(name):
    env = EdgeTrainEnv(scenario=name)
    greedy = make_greedy()
    for seed in range(10):
        obs, _ = env.reset(seed=seed)
        best = greedy(env, obs)
        assert env.offered[0].plan == best.plan and env.index_of(best) == 0
        for slot in best.slots if len(env.available_devices()) > 1 else ():  # alone, nowhere else to go
            assert any(slot not in plan.slots for plan in env.offered)
        costs = [env.objective.zeus_cost(p.prediction.total_energy_j, p.prediction.step_time_s) for p in env.offered]
        assert costs == sorted(costs)
        assert len({p.plan for p in env.offered}) == len(env.offered) <= MAX_CANDIDATES


def test_the_current_plan_is_offered_without_a_switch_while_its_devices_are_there():
    env = EdgeTrainEnv(scenario="smart-home")
    obs, _ = env.reset(seed=1)
    expensive = max(env.candidate_plans(), key=lambda p: p.prediction.step_time_s * p.prediction.total_energy_j)
    obs, _, _, _, info = env.step(expensive)
    assert not info["failures"]
    index = env.index_of(expensive)
    assert index is not None
    rows = _rows(obs)
    assert rows[index, 10] == 1.0 and rows[index, 11] == 0.0  # the current plan: no switch
    assert (rows[np.arange(len(env.offered)) != index, 10] == 0).all()
    assert (rows[np.arange(len(env.offered)) != index, 11] > 0).all()


def test_leave_chances_grow_with_age_only_where_sessions_have_a_typical_length():
    markov = Availability("markov", mean_up_s=100.0, mean_down_s=50.0)
    sessions = Availability("sessions", mean_up_s=100.0, mean_down_s=50.0, shape=4.0)
    assert leave_probability(markov, 10.0, 5.0, 12.0) == pytest.approx(leave_probability(markov, 150.0, 5.0, 12.0))
    young, old = leave_probability(sessions, 10.0, 5.0, 12.0), leave_probability(sessions, 150.0, 5.0, 12.0)
    assert young < 0.01 and old > 0.3  # the memoryless chance sits between: 1 - exp(-5 / 100) = 0.049
    night = Availability("sessions", mean_up_s=1e6, mean_down_s=50.0, hours=[[0, 6], [22, 24]])
    assert leave_probability(night, 10.0, 1800.0, 5.8) == 1.0  # the window closes at 6:00
    assert leave_probability(night, 10.0, 1800.0, 23.8) < 0.01  # 22-24 runs on into 0-6
    assert leave_probability(Availability("always"), 1e9, 1e9, 0.0) == 0.0


def test_an_offer_shows_the_risk_of_a_device_that_has_been_up_long():
    """Two episodes on a fleet whose devices have sessions of a typical length: the offers that include
    the device that has been up longest carry the larger leave chance (features 6 and 7)."""
    scenario = load_scenario("tests/data/tiny.yaml")
    sessions = Availability("sessions", mean_up_s=60.0, mean_down_s=30.0, shape=5.0)
    scenario = dataclasses.replace(scenario, devices=tuple(dataclasses.replace(d, availability=sessions)
                                                           for d in scenario.devices))
    env = EdgeTrainEnv(scenario=scenario, calibration=TINY_CALIBRATION)
    checked = 0
    for seed in range(40):
        obs, _ = env.reset(seed=seed)
        ages = env.state.world.up_for_s
        rows = _rows(obs)
        singles = {plan.slots[0]: row for row, plan in enumerate(env.offered) if len(plan.slots) == 1}
        if len(singles) >= 2:
            young, old = min(singles, key=lambda i: ages[i]), max(singles, key=lambda i: ages[i])
            if ages[old] - ages[young] > 20:
                assert rows[singles[old], 6] > rows[singles[young], 6]
                assert rows[singles[old], 7] >= rows[singles[young], 7]
                checked += 1
    assert checked >= 3


def test_the_switch_payback_feature_weighs_the_gain_against_the_switch_time():
    """Feature 19: with no plan running every offer is a forced switch (1); once a dear plan runs, it
    reads 0.5 (break-even), cheaper offers more, and less when a switch costs 100x more time; offers no
    cheaper than the running plan read 0."""
    def observe(switch_s):
        env = EdgeTrainEnv(scenario="smart-home", switch_s=switch_s)
        obs, _ = env.reset(seed=1)
        assert (_rows(obs)[: len(env.offered), 19] == 1.0).all()
        dear = max(env.candidate_plans(), key=lambda p: env._offers[env.names].cost_per_sample(p))
        obs, _, _, _, info = env.step(dear)
        assert not info["failures"]
        offer = env._offers[env.names]
        costs = np.array([offer.cost_per_sample(p) for p in env.offered])
        return _rows(obs)[: len(env.offered), 19], costs, env.index_of(dear)

    cheap, costs, current = observe(0.5)
    dear, _, _ = observe(50.0)
    assert cheap[current] == dear[current] == 0.5
    cheaper = costs < costs[current]
    assert cheaper.any() and (cheap[cheaper] > 0.5).all() and (dear[cheaper] < cheap[cheaper]).all()
    assert (cheap[~cheaper & (np.arange(len(costs)) != current)] == 0).all()


class _OldLayout(gym.Env):
    """The observation and action layout of EdgeTrain-v0 before the job-aware policy."""

    observation_space = spaces.Box(0.0, 1.0, (87,), dtype=np.float32)
    action_space = spaces.MultiDiscrete([5] + [2] * 8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(87, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(87, dtype=np.float32), 0.0, True, False, {}

    def action_masks(self):
        return np.ones(21, dtype=bool)


def test_a_policy_saved_for_another_layout_is_refused_in_one_sentence(tmp_path):
    from sb3_contrib import MaskablePPO
    old = tmp_path / "old.zip"
    MaskablePPO("MlpPolicy", _OldLayout(), n_steps=8, batch_size=8, device="cpu").save(old)
    result = run_cli("evaluate", "--policy", str(old), "--episodes", "1", "--json", str(tmp_path / "e.json"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    from edgetrain.envs.edgetrain_env import MAX_CANDIDATES, OBSERVATION_SIZE
    assert OBSERVATION_SIZE == 16 * 20 + 6  # 16 offers of 20 features (kind one-hot with hybrid, payback), 6 of the job
    assert "was trained for observations of 87 features and 21 action-mask entries, and EdgeTrain-v0 now has " \
           f"{OBSERVATION_SIZE} and {MAX_CANDIDATES}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_fleet_of_sixteen_devices_is_served_from_device_orderings():
    """Beyond 8 available devices the plan pool comes from orderings of the devices, not every subset:
    a 16-device fleet (the tiny fleet's measured devices, each standing for several) resets, offers
    greedy's plan first, masks, and trains to the end of a job."""
    import copy
    import time

    from edgetrain.agents.baselines import make_heuristic
    from edgetrain.core.calibration import load_calibration
    from edgetrain.envs.slots import EXHAUSTIVE_UP_TO
    tiny = load_scenario("tests/data/tiny.yaml")
    calibration = copy.deepcopy(load_calibration(TINY_CALIBRATION))
    devices = []
    for k in range(16):
        base = tiny.devices[k % 3]
        devices.append(dataclasses.replace(base, name=f"{base.name}{k}", cpu_share=0.05))
        calibration["devices"][f"{base.name}{k}"] = calibration["devices"][base.name]
    for x in devices:
        for y in devices:
            if x is not y:
                calibration["links"][f"{x.name}->{y.name}"] = calibration["links"][
                    f"{x.name[0]}->{y.name[0]}" if x.name[0] != y.name[0] else "a->b"]
    scenario = dataclasses.replace(tiny, name="sixteen", devices=tuple(devices))
    env = EdgeTrainEnv(scenario=scenario, calibration=calibration)
    obs, _ = env.reset(seed=0)
    assert env.n == 16 > EXHAUSTIVE_UP_TO
    started = time.perf_counter()
    pool = env.candidate_plans()
    assert time.perf_counter() - started < 30  # not 2^16 subsets
    assert 16 < len(pool) < 2000  # every device alone, and prefixes of three orderings per kind
    assert max(len(p.slots) for p in pool) > EXHAUSTIVE_UP_TO  # large plans too (batch 10: dp on 10 at most)
    assert all(p.prediction.fits and not p.prediction.problems for p in pool)
    greedy, heuristic = make_greedy(), make_heuristic()
    for _ in range(200):
        assert env.offered[0].plan == greedy(env, obs).plan
        assert env.action_masks().sum() == len(env.offered) <= MAX_CANDIDATES
        obs, _, terminated, truncated, _ = env.step(heuristic(env, obs))
        if terminated or truncated:
            break
    assert terminated
