"""EdgeTrain-v0 on the simulator, calibrated by a measured calibration of the tiny scenario's devices."""

import numpy as np
import pytest

from edgetrain.core.plans import Plan
from gymnasium.utils.env_checker import check_env

import edgetrain.envs  # noqa: F401
from conftest import TINY, TINY_CALIBRATION
from edgetrain.core.calibration import load_calibration
from edgetrain.core.scenario import parse_scenario
from edgetrain.envs.actions import random_valid_action
from edgetrain.envs.candidates import CANDIDATE_FEATURES, MAX_CANDIDATES
from edgetrain.envs.edgetrain_env import EdgeTrainEnv


@pytest.fixture(scope="module")
def calibration():
    return load_calibration(TINY_CALIBRATION)


def churny_scenario():
    """The tiny fleet with devices that come and go every few minutes of simulated time."""
    text = open(TINY).read().replace("bandwidth_mbps: 40}", "bandwidth_mbps: 40, availability: "
                                     "{kind: markov, mean_up_s: 3, mean_down_s: 2}}")
    text = text.replace("bandwidth_mbps: 20}", "bandwidth_mbps: 20, availability: "
                        "{kind: markov, mean_up_s: 2, mean_down_s: 2}}")
    return parse_scenario(text, TINY)


@pytest.mark.parametrize("seed", range(3))
def test_check_env_passes(calibration, seed):
    """Gymnasium's checker steps with unmasked samples of the action space: every index must be valid
    (once it failed when the sample fell beyond the offer)."""
    env = EdgeTrainEnv(scenario=TINY, calibration=calibration)
    env.action_space.seed(seed)
    check_env(env)


def test_an_index_beyond_the_offer_runs_the_cheapest_offer(calibration):
    env = EdgeTrainEnv(scenario=TINY, calibration=calibration, noise=0.0)
    env.reset(seed=0)
    assert len(env.offered) < 16
    cheapest = env.offered[0].plan
    _, _, _, _, info = env.step(15)
    assert info["plan"] == str(cheapest)


def test_same_seed_same_rollout(calibration):
    def rollout(seed):
        env = EdgeTrainEnv(scenario=churny_scenario(), calibration=calibration)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(7)
        trace = [obs]
        for _ in range(60):
            obs, reward, terminated, truncated, info = env.step(random_valid_action(env.action_masks(), rng))
            trace += [obs, reward, info["plan"], info["failures"]]
            if terminated:
                break
        return trace

    first, second, other = rollout(3), rollout(3), rollout(4)
    assert len(first) == len(second)
    assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b for a, b in zip(first, second))
    assert any(not np.array_equal(a, b) if isinstance(a, np.ndarray) else a != b for a, b in zip(first, other))


def test_masks_never_offer_an_unavailable_device_and_failures_happen(calibration):
    env = EdgeTrainEnv(scenario=churny_scenario(), calibration=calibration, decision_steps=20)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    failures = unavailable_seen = 0
    for _ in range(400):
        mask = env.action_masks()
        online = {i for i in range(env.n) if env.dynamics.online(i, env.state.world.t)}
        assert mask.sum() == len(env.offered) > 0 and mask[: len(env.offered)].all()
        assert all(set(plan.slots) <= online for plan in env.offered)
        rows = obs[: MAX_CANDIDATES * CANDIDATE_FEATURES].reshape(MAX_CANDIDATES, CANDIDATE_FEATURES)
        np.testing.assert_array_equal(rows[:, 0], mask)  # a row holds an offer exactly where the mask allows
        assert rows[0, 1] == 1.0  # the first offer is the cheapest (greedy's plan)
        unavailable_seen += env.n - len(online)
        obs, reward, terminated, _, info = env.step(random_valid_action(env.action_masks(), rng))
        assert reward < 0
        failures += info["failures"]
        if terminated:
            obs, _ = env.reset()
    assert unavailable_seen > 0 and failures > 0  # the churn is real, and costs


def test_an_episode_ends_when_the_target_samples_are_trained(calibration):
    env = EdgeTrainEnv(scenario=TINY, calibration=calibration)
    env.reset(seed=0)
    total, steps = 0, 0
    while True:
        _, _, terminated, _, info = env.step(env.resolve("dp", [0, 1, 2]))
        total += info["samples"]
        steps += 1
        if terminated:
            break
    target = env.scenario.objective.target_samples
    assert target <= total < target + env.interval_samples
    assert info["plan"] == "dp:a,b,c"


def test_infeasible_combinations_resolve_to_a_plan_that_can_run(calibration):
    env = EdgeTrainEnv(scenario=TINY, calibration=calibration)
    env.reset(seed=0)
    # local with three devices chosen: one device, the fastest of them.
    resolved = env.resolve("local", [0, 1, 2])
    assert resolved.plan.kind == "local" and len(resolved.slots) == 1
    assert resolved.slots[0] == env.fleet.speed_order[0]


def test_varied_fleets_use_subsets_in_random_slots_and_stay_valid(calibration):
    env = EdgeTrainEnv(scenario=TINY, calibration=calibration, vary_fleet=True)
    fleets = set()
    rng = np.random.default_rng(0)
    for seed in range(30):
        obs, _ = env.reset(seed=seed)
        fleets.add(tuple(env.names))
        assert env.n >= 2
        for _ in range(5):
            assert all(max(plan.slots) < env.n for plan in env.offered)  # only this episode's devices
            obs, _, terminated, _, info = env.step(random_valid_action(env.action_masks(), rng))
            assert set(Plan.parse(info["plan"]).devices) <= set(env.names)
            if terminated:
                break
    assert len(fleets) > 5  # subsets and orders both vary
    assert any(len(f) < 3 for f in fleets) and any(len(f) == 3 for f in fleets)
    again = EdgeTrainEnv(scenario=TINY, calibration=calibration, vary_fleet=True)
    again.reset(seed=29)
    assert tuple(again.names) == tuple(env.names)  # seeded: the same episode gets the same fleet


def test_a_scenario_prices_its_own_switches_and_an_explicit_switch_time_overrides_it():
    """smart-home-sessions says a switch costs its fleet 8 s: the simulator charges that (an interval that
    switches takes 8 s longer than one that keeps its plan), unless the env is given another figure."""
    env = EdgeTrainEnv(scenario="smart-home-sessions", noise=0.0)
    assert env.rules.switch_s == 8.0
    assert EdgeTrainEnv(scenario="smart-home-sessions", switch_s=3.0).rules.switch_s == 3.0
    assert EdgeTrainEnv(scenario="smart-home").rules.switch_s == 2.0  # the scenario does not say: the default
    env.reset(seed=4)
    always = env.resolve("local", [env.names.index("orin-nano")])  # orin-nano never leaves
    _, _, _, _, first = env.step(always)
    _, _, _, _, kept = env.step(always)
    assert first["switched"] and not kept["switched"]
    assert first["time_s"] - kept["time_s"] == pytest.approx(8.0, rel=1e-6)


def test_varied_fleets_also_come_and_go_in_sessions_of_varied_length():
    """Domain randomisation deals sessions with other lengths and shapes, so that a policy learns to
    read a device's age on fleets it was not trained on."""
    env = EdgeTrainEnv(scenario="smart-home-sessions", vary_fleet=True)
    laptops = set()
    made_sessions = False
    for seed in range(60):
        env.reset(seed=seed)
        for device in env.fleet.scenario.devices:
            availability = device.availability
            if availability.kind == "sessions":
                assert 1.5 <= availability.weibull_shape <= 5.0
                if device.name == "laptop":
                    laptops.add(round(availability.mean_up_s, 3))
                if device.name in ("orin-nano", "pi4"):  # always there in the scenario
                    made_sessions = True
    assert len(laptops) > 10  # the laptop's sessions got other lengths, not only the scenario's 40 s
    assert made_sessions
