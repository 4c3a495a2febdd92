"""EdgeTrain-v0 on the simulator, calibrated on a real profile of the tiny scenario's devices."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401
from conftest import TINY
from edgetrain.scenario import load_scenario, parse_scenario
from envs.edgetrain_env import MAX_DEVICES, EdgeTrainEnv

pytestmark = pytest.mark.distributed  # the profile fixture starts real shard processes


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    from runtime.launcher import LocalLauncher
    from runtime.profile_job import profile_devices
    return profile_devices(load_scenario(TINY), LocalLauncher(), tmp_path_factory.mktemp("profile"), backend="local")


def churny_scenario():
    """The tiny fleet with devices that come and go every few minutes of simulated time."""
    text = open(TINY).read().replace("bandwidth_mbps: 40}", "bandwidth_mbps: 40, availability: "
                                     "{kind: markov, mean_up_s: 3, mean_down_s: 2}}")
    text = text.replace("bandwidth_mbps: 20}", "bandwidth_mbps: 20, availability: "
                        "{kind: markov, mean_up_s: 2, mean_down_s: 2}}")
    return parse_scenario(text, TINY)


def random_valid_action(env, rng):
    mask = env.action_masks()
    kinds = np.flatnonzero(mask[:5])
    bits = [rng.choice(np.flatnonzero(mask[5 + 2 * i: 7 + 2 * i])) for i in range(MAX_DEVICES)]
    return np.array([rng.choice(kinds)] + bits)


def test_check_env_passes(profile):
    check_env(EdgeTrainEnv(scenario=TINY, profile=profile))


def test_same_seed_same_rollout(profile):
    def rollout(seed):
        env = EdgeTrainEnv(scenario=churny_scenario(), profile=profile)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(7)
        trace = [obs]
        for _ in range(60):
            obs, reward, terminated, truncated, info = env.step(random_valid_action(env, rng))
            trace += [obs, reward, info["plan"], info["failures"]]
            if terminated:
                break
        return trace

    first, second, other = rollout(3), rollout(3), rollout(4)
    assert len(first) == len(second)
    assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b for a, b in zip(first, second))
    assert any(not np.array_equal(a, b) if isinstance(a, np.ndarray) else a != b for a, b in zip(first, other))


def test_masks_never_allow_an_unavailable_device_and_failures_happen(profile):
    env = EdgeTrainEnv(scenario=churny_scenario(), profile=profile, decision_steps=20)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    failures = unavailable_seen = 0
    for _ in range(400):
        mask = env.action_masks()
        for i in range(MAX_DEVICES):
            available = i < env.n and env._online(i, env.t)
            assert mask[5 + 2 * i + 1] == available
            assert mask[5 + 2 * i]  # leaving a device out is always allowed
            unavailable_seen += i < env.n and not available
        _, reward, terminated, _, info = env.step(random_valid_action(env, rng))
        assert reward < 0
        failures += info["failures"]
        if terminated:
            env.reset()
    assert unavailable_seen > 0 and failures > 0  # the churn is real, and costs


def test_an_episode_ends_when_the_target_samples_are_trained(profile):
    env = EdgeTrainEnv(scenario=TINY, profile=profile)
    env.reset(seed=0)
    total, steps = 0, 0
    while True:
        _, _, terminated, _, info = env.step(np.array([1] + [1] * 3 + [0] * 5))  # dp on all three
        total += info["samples"]
        steps += 1
        if terminated:
            break
    target = env.scenario.objective.target_samples
    assert target <= total < target + env.interval_samples
    assert info["plan"] == "dp:a,b,c"


def test_infeasible_combinations_resolve_to_a_plan_that_can_run(profile):
    env = EdgeTrainEnv(scenario=TINY, profile=profile)
    env.reset(seed=0)
    # local with three devices chosen: one device, the fastest of them.
    kind, members = env.resolve(0, 0b111)
    assert kind == "local" and len(members) == 1
    assert members[0] == env.speed_order[0]


def test_varied_fleets_use_subsets_in_random_slots_and_stay_valid(profile):
    env = EdgeTrainEnv(scenario=TINY, profile=profile, vary_fleet=True)
    fleets = set()
    rng = np.random.default_rng(0)
    for seed in range(30):
        obs, _ = env.reset(seed=seed)
        fleets.add(tuple(env.names))
        assert obs[: MAX_DEVICES * 10].reshape(MAX_DEVICES, 10)[:, 0].sum() == env.n >= 2  # slots held
        for _ in range(5):
            mask = env.action_masks()
            assert not mask[5 + 2 * env.n + 1::2].any()  # slots beyond this episode's fleet stay empty
            obs, _, terminated, _, info = env.step(random_valid_action(env, rng))
            assert set(info["plan"].split(":")[1].split(",")) <= set(env.names)
            if terminated:
                break
    assert len(fleets) > 5  # subsets and orders both vary
    assert any(len(f) < 3 for f in fleets) and any(len(f) == 3 for f in fleets)
    again = EdgeTrainEnv(scenario=TINY, profile=profile, vary_fleet=True)
    again.reset(seed=29)
    assert tuple(again.names) == tuple(env.names)  # seeded: the same episode gets the same fleet
