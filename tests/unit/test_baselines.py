"""The baselines on fixed seeds, episode by episode: the orderings that must hold where they do, and
evaluation's figures consistent with the one cost formula."""

import pytest

from edgetrain.agents.baselines import BASELINES
from edgetrain.agents.evaluate import evaluate, run_episode
from edgetrain.core.calibration import default_calibration_path, load_calibration
from edgetrain.core.objective import EnergyTimeCost
from edgetrain.core.scenario import load_scenario
from edgetrain.envs.edgetrain_env import EdgeTrainEnv


@pytest.mark.parametrize("name", ["smart-home", "smart-home-busy", "workshop"])
def test_clairvoyant_then_greedy_then_all_devices_on_every_episode(name):
    scenario = load_scenario(name)
    report = evaluate(scenario, load_calibration(default_calibration_path(scenario)), None, 5, seed=2000)
    per_episode = report["per_episode_zeus_cost"]
    for episode, (planner, greedy, all_dp, single) in enumerate(zip(
            per_episode["clairvoyant"], per_episode["greedy"], per_episode["all_dp"],
            per_episode["fastest_single"])):
        # Greedy's cheapest plan beats both rules of thumb (on these fleets every device at once, and the
        # fastest alone, cost more than the laptop and the Orin together). (The lifetime oracle, which
        # judges one plan's lifetime without replanning, no longer always beats greedy: since a lost device
        # is noticed in 2.5 s, not 5, a failure costs less than the slower plan it sometimes picks to dodge
        # one: 1.005x greedy on one episode.)
        assert greedy < all_dp and greedy < single, (episode, greedy, all_dp, single)
        # Under the simulator's 5% noise the clairvoyant planner, which plans on the noise-free trace, may
        # lose to greedy by a little (1.006x on one episode of smart-home-busy once hybrid plans came);
        # never by more than the noise. Without noise it never loses (the next test).
        assert planner <= 1.05 * greedy, (episode, planner, greedy)
    results = report["results"]
    assert results["greedy"]["zeus_cost"] < results["random"]["zeus_cost"]
    cost = EnergyTimeCost.of(scenario)
    for contender, figures in results.items():
        assert figures["completed"] == 1.0, contender
        assert figures["zeus_cost"] == pytest.approx(
            cost.zeus_cost(figures["energy_per_sample_j"], figures["time_per_sample_s"]), rel=1e-9), contender


def _noise_free_job(env, act, seed):
    obs, _ = env.reset(seed=seed)
    for _ in range(100_000):
        obs, _, terminated, truncated, info = env.step(act(env, obs))
        if terminated or truncated:
            return info["job"]


def test_the_clairvoyant_planner_is_never_beaten_by_greedy_without_noise():
    """A small case searched exhaustively: every plan of the tiny fleet is a candidate (the width covers
    them all), on a noise-free simulator, with a short job on devices that come and go every few seconds,
    so that switches, failures and returns happen. Planning the job on the true trace can only match or
    beat greedy's job (the rollout's guarantee), and here it must beat it on some traces."""
    import dataclasses

    from conftest import TINY, TINY_CALIBRATION
    from edgetrain.agents.baselines import make_clairvoyant, make_greedy
    from edgetrain.core.config import Availability
    from edgetrain.envs.edgetrain_env import EdgeTrainEnv
    scenario = load_scenario(TINY)
    churn = Availability("markov", mean_up_s=10.0, mean_down_s=5.0)
    scenario = dataclasses.replace(scenario, devices=tuple(dataclasses.replace(d, availability=churn)
                                                           for d in scenario.devices))
    env = EdgeTrainEnv(scenario=scenario, calibration=load_calibration(TINY_CALIBRATION), noise=0.0)
    per_sample = lambda job: job.zeus_cost / job.samples  # noqa: E731
    better = 0
    for seed in range(8):
        greedy = per_sample(_noise_free_job(env, make_greedy(), seed))
        clairvoyant = per_sample(_noise_free_job(env, make_clairvoyant(width=100), seed))
        assert clairvoyant <= greedy * (1 + 1e-9), (seed, clairvoyant, greedy)
        better += clairvoyant < greedy * 0.99
    assert better >= 3


@pytest.mark.parametrize("name", ["smart-home-busy", "workshop"])
def test_on_the_noise_free_trace_the_clairvoyant_planner_never_loses_to_greedy(name):
    """Greedy's first choice, followed by greedy, is among the futures the planner weighs: on the trace it
    plans on, it can only do as well or better, episode by episode."""
    scenario = load_scenario(name)
    env = EdgeTrainEnv(scenario=scenario, calibration=load_calibration(default_calibration_path(scenario)), noise=0.0)
    for seed in range(2000, 2004):
        greedy = run_episode(env, BASELINES["greedy"](0), seed)["zeus_cost"]
        planner = run_episode(env, BASELINES["clairvoyant"](0), seed)["zeus_cost"]
        assert planner <= greedy + 1e-12, (seed, planner, greedy)


def test_the_battery_reserve_does_not_strand_a_fleet_of_battery_devices():
    """Before, the heuristic's 30% reserve spared both Jetsons of solar-night (every device on a battery)
    while the Pi trained alone; the spared boards went on drawing idle power, every battery ran flat and
    the job waited for the morning: 2.12x greedy's cost at 1.8 M samples. Sparing now has a price limit."""
    import dataclasses
    from pathlib import Path
    scenario = load_scenario(str(Path(__file__).parents[2] / "benchmarks" / "scenarios" / "solar-night.yaml"))
    scenario = dataclasses.replace(scenario, objective=dataclasses.replace(scenario.objective, target_samples=1_800_000))
    env = EdgeTrainEnv(scenario=scenario, calibration=load_calibration(default_calibration_path(load_scenario("smart-home"))),
                       decision_steps=100)
    costs = {name: sum(run_episode(env, BASELINES[name](0), 2000 + e)["zeus_cost"] for e in range(3))
             for name in ("greedy", "heuristic")}
    assert costs["heuristic"] <= 1.05 * costs["greedy"], costs


def test_where_every_device_runs_on_a_battery_the_heuristic_spares_them_and_stays_off_the_cliff():
    """solar-night's whole fleet runs on batteries, and greedy's plan drains them before the 2.3 M-sample
    job is done: the job then waits for the sun. The heuristic weighs energy more once a member would run
    flat before the end and before its charger (measured 0.979-0.980x greedy, episode by episode). In
    battery-evening the Jetsons and the Pi are on mains power and carry on when the laptop runs flat:
    there the rule stays off (with it on, 1.036x greedy)."""
    from pathlib import Path
    scenarios = Path(__file__).parents[2] / "benchmarks" / "scenarios"
    calibration = load_calibration(default_calibration_path(load_scenario("smart-home")))
    for name, most in (("solar-night", 0.99), ("battery-evening", 1.0 + 1e-9)):
        env = EdgeTrainEnv(scenario=load_scenario(str(scenarios / f"{name}.yaml")), calibration=calibration,
                           decision_steps=100)
        for seed in (2000, 2001, 2002):
            greedy, heuristic = (run_episode(env, BASELINES[rule](0), seed)["zeus_cost"] for rule in ("greedy", "heuristic"))
            assert heuristic <= most * greedy, (name, seed, heuristic / greedy)


def test_a_plans_expected_stay_follows_its_members_availability_and_age():
    """The heuristic's switch payback counts the samples a new plan is expected to train before a member
    leaves: for a Markov device its mean time up whatever its age; for sessions of a typical length
    (Weibull shape 4) much less late in a session than at its start; for a device always there, the
    whole horizon; for a plan, less than for any of its members."""
    import dataclasses

    from edgetrain.agents.baselines import expected_stay_s
    from edgetrain.core.config import Availability
    scenario = load_scenario("smart-home-sessions")  # laptop: sessions of 40 s, shape 4
    env = EdgeTrainEnv(scenario=scenario)
    env.reset(seed=0)
    slot = {name: i for i, name in enumerate(env.names)}
    laptop, orin = env.resolve("local", [slot["laptop"]]), env.resolve("local", [slot["orin-nano"]])

    def aged(env, seconds):  # the laptop up for this long
        ups = list(env.state.world.up_for_s)
        ups[slot["laptop"]] = seconds
        env.state = dataclasses.replace(env.state, world=dataclasses.replace(env.state.world, up_for_s=tuple(ups)))

    aged(env, 0.0)
    fresh = expected_stay_s(env, laptop, 1000.0)
    aged(env, 40.0)
    late = expected_stay_s(env, laptop, 1000.0)
    assert fresh == pytest.approx(40.0, rel=0.05) and late < 0.5 * fresh
    assert expected_stay_s(env, orin, 500.0) == pytest.approx(500.0)
    both = env.resolve("dp", [slot["laptop"], slot["orin-nano"], slot["xavier-nx"]])
    assert expected_stay_s(env, both, 1000.0) < late
    markov = dataclasses.replace(scenario, devices=tuple(
        dataclasses.replace(d, availability=Availability("markov", mean_up_s=40.0, mean_down_s=20.0))
        if d.name == "laptop" else d for d in scenario.devices))
    env = EdgeTrainEnv(scenario=markov)
    env.reset(seed=0)
    for age in (0.0, 40.0, 200.0):
        aged(env, age)
        assert expected_stay_s(env, env.resolve("local", [slot["laptop"]]), 2000.0) == pytest.approx(40.0, rel=0.05)


@pytest.mark.parametrize("rule", ["greedy", "heuristic", "clairvoyant"])
def test_a_rule_prices_by_the_model_the_env_prices_by_now(rule):
    """Before: greedy cached its choice per available set for good, so in a deployment (which recalibrates
    after every decision) it kept a plan's calibrated price and went back to a plan measured 2.6x slower.
    A rule's choice on the same set follows the recalibrated model."""
    from edgetrain.envs.costmodel import Corrections
    scenario = load_scenario("smart-home")
    env = EdgeTrainEnv(scenario=scenario, calibration=load_calibration(default_calibration_path(scenario)))
    act = BASELINES[rule](0)
    obs, _ = env.reset(seed=2000)
    first = act(env, obs).plan
    # What a deployment would have measured: every device of that plan four times slower than calibrated.
    env.reprice(env.cost.corrected(Corrections(compute={d: 4.0 for d in first.devices})))
    obs = env._get_obs()
    again = act(env, obs).plan
    assert again != first
    assert set(again.devices) != set(first.devices)
