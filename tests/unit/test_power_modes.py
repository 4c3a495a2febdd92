"""Devices' lower power modes (DeviceConfig.power_modes, plan syntax `dev~mode`): validated in one
sentence, priced by the cost model as slower compute at lower power, offered to the simulator's
policies, rules and planner, refused by the local backend (no worker sets it) before anything starts."""

import dataclasses

import pytest

from conftest import TINY, run_cli
from edgetrain.core.calibration import default_calibration_path, load_calibration
from edgetrain.core.catalog import get_profile
from edgetrain.core.config import PowerMode
from edgetrain.core.errors import PlanError, ScenarioError
from edgetrain.core.feasibility import plan_problems
from edgetrain.core.plans import Plan
from edgetrain.core.scenario import load_scenario, parse_scenario
from edgetrain.envs.costmodel import CostModel
from edgetrain.envs.slots import SlotFleet

MODE = PowerMode("7W", speed=0.6, power=0.45)


def _with_modes(scenario, **modes):
    return dataclasses.replace(scenario, devices=tuple(
        dataclasses.replace(d, power_modes=modes[d.name.replace("-", "_")]) if d.name.replace("-", "_") in modes else d
        for d in scenario.devices))


@pytest.fixture(scope="module")
def home():
    plain = load_scenario("smart-home-sessions")
    scenario = _with_modes(plain, orin_nano=(MODE,), laptop=(PowerMode("quiet", 0.8, 0.5),))
    return scenario, CostModel(load_calibration(default_calibration_path(plain)), scenario)


def test_power_modes_parse_and_bad_ones_get_one_sentence_naming_the_key():
    text = "name: t\ndevices:\n  - {name: a, profile: jetson-orin-nano, power_modes: MODES}\n"
    device = parse_scenario(text.replace("MODES", "{7W: {speed: 0.6, power: 0.45}}"), "t.yaml").devices[0]
    assert device.power_modes == (MODE,) and device.power_mode("7W") == MODE and device.power_mode("max") is None
    for modes, expected in [("{7W: {speed: 1.0, power: 0.45}}", "devices[0].power_modes.7W.speed: must be a fraction"),
                            ("{7W: {speed: 0.5, power: 0}}", "devices[0].power_modes.7W.power: must be a fraction"),
                            ("{max: {speed: 0.5, power: 0.4}}", "devices[0].power_modes: must be letters"),
                            ("{7W: {speed: 0.5}}", "devices[0].power_modes.7W: must be {speed: FRACTION, power: FRACTION}"),
                            ("[7W]", "devices[0].power_modes: must map 1 to 4 mode names")]:
        with pytest.raises(ScenarioError) as refused:
            parse_scenario(text.replace("MODES", modes), "t.yaml")
        assert str(refused.value).startswith(f"t.yaml: {expected}"), str(refused.value)


def test_a_plans_power_modes_round_trip_and_the_top_mode_has_one_spelling():
    plan = Plan.parse("hybrid:orin-nano~7W+xavier-nx=3/pi4~low=1@4")
    assert plan.modes == ("7W", "", "low") and plan.mode("pi4") == "low"
    assert Plan.parse(str(plan)) == plan and str(plan) == "hybrid:orin-nano~7W+xavier-nx=3/pi4~low=1@4"
    assert Plan.parse("dp:laptop~max,pi4") == Plan.parse("dp:laptop,pi4") == plan_top("dp:laptop~quiet,pi4")
    assert plan.without({"xavier-nx"}) == Plan.parse("hybrid:orin-nano~7W=3/pi4~low=1@4")
    with pytest.raises(PlanError, match="a power mode must follow ~"):
        Plan.parse("dp:laptop~,pi4")


def plan_top(text):
    return Plan.parse(text).top_modes


def test_a_mode_the_device_lacks_is_a_problem_of_the_plan(home):
    scenario, cost = home
    assert plan_problems(Plan.parse("dp:laptop,orin-nano~7W"), scenario) == []
    problems = plan_problems(Plan.parse("dp:laptop,pi4~7W"), scenario)
    assert problems == ["pi4 has no power mode '7W' (its modes: max)"]
    assert not cost.predict(Plan.parse("dp:laptop,pi4~7W")).fits


def test_a_lower_mode_computes_slower_at_its_share_of_the_compute_power(home):
    scenario, cost = home
    top, low = cost.predict(Plan.parse("local:orin-nano")), cost.predict(Plan.parse("local:orin-nano~7W"))
    assert low.step_time_s == pytest.approx(top.step_time_s / MODE.speed, rel=1e-9)
    idle_w = get_profile(scenario.device("orin-nano").profile).idle_power_w.value
    compute_j = top.energy_j["orin-nano"] - idle_w * top.step_time_s
    assert compute_j > 0
    assert low.energy_j["orin-nano"] == pytest.approx(idle_w * low.step_time_s + compute_j * MODE.power / MODE.speed,
                                                      rel=1e-9)
    # Data parallel on the laptop and the slower Orin Nano: the laptop waited for the Orin at every step;
    # in its quiet mode it computes its half-batch in that wait, the step takes as long, on less energy.
    both, lowered = cost.predict(Plan.parse("dp:laptop,orin-nano")), cost.predict(Plan.parse("dp:laptop~quiet,orin-nano"))
    assert lowered.plan == "dp:laptop~quiet,orin-nano" and lowered.step_time_s == pytest.approx(both.step_time_s)
    assert lowered.energy_j["laptop"] < both.energy_j["laptop"]
    assert lowered.energy_j["orin-nano"] == pytest.approx(both.energy_j["orin-nano"])
    slowed = cost.predict(Plan.parse("dp:laptop,orin-nano~7W"))
    assert slowed.step_time_s > both.step_time_s  # the slower member sets the pace


def test_the_simulators_offer_holds_modes_the_live_one_does_not(home):
    scenario, cost = home
    everyone = (1 << len(scenario.devices)) - 1
    offered = {str(c.plan) for c in SlotFleet(scenario, cost).candidates(everyone)}
    assert {"local:orin-nano~7W", "local:laptop~quiet", "dp:laptop~quiet,orin-nano~7W",
            "dp:laptop,orin-nano~7W"} <= offered
    live = {str(c.plan) for c in SlotFleet(scenario, cost, power_modes=False).candidates(everyone)}
    assert not any("~" in plan for plan in live) and live < offered


def test_greedy_runs_a_device_in_its_lower_mode_where_that_is_cheaper(home):
    from edgetrain.agents.baselines import make_greedy
    from edgetrain.envs.edgetrain_env import EdgeTrainEnv
    scenario, _ = home
    # Energy alone counts, and the Orin Nano's mode does the same work on a tenth of the power: cheaper.
    frugal = _with_modes(dataclasses.replace(scenario, objective=dataclasses.replace(scenario.objective, eta=1.0)),
                         orin_nano=(PowerMode("7W", 0.9, 0.1),))
    env = EdgeTrainEnv(frugal, calibration=default_calibration_path(load_scenario("smart-home-sessions")))
    obs, _ = env.reset(seed=0)
    greedy = make_greedy()
    _, _, _, _, info = env.step(greedy(env, obs))
    assert "orin-nano~7W" in info["plan"], info["plan"]


def test_the_local_backend_refuses_a_plan_with_a_power_mode_before_anything_starts(tmp_path):
    # No worker runs on a local backend's devices, so nothing would set the mode: refused, not ignored.
    scenario = tmp_path / "tiny-modes.yaml"
    scenario.write_text(open(TINY).read().replace("profile: laptop,", "profile: laptop, power_modes: {quiet: {speed: 0.8, power: 0.5}},", 1))
    run_dir = tmp_path / "run"
    result = run_cli("run", "--plan", "local:a~quiet", "--scenario", str(scenario), "--steps", "1",
                     "--run-dir", str(run_dir), timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "a power mode (a~quiet) is set by the device's worker" in last and "--backend mininet" in last, last
    assert not run_dir.exists()


def test_the_planner_weighs_power_modes_only_when_asked_and_picks_one_that_is_cheaper(home):
    from edgetrain.envs.planner import Planner
    scenario, _ = home
    # Energy alone counts, and the Orin Nano's mode does the same work on a tenth of the power.
    frugal = _with_modes(dataclasses.replace(scenario, objective=dataclasses.replace(scenario.objective, eta=1.0)),
                         orin_nano=(PowerMode("7W", 0.9, 0.1),))
    planner = Planner(CostModel(load_calibration(default_calibration_path(load_scenario("smart-home-sessions"))), frugal))
    devices = ["orin-nano", "xavier-nx"]
    top = planner.best_of_each_family(devices)
    weighed = planner.best_of_each_family(devices, power_modes=True)
    assert not any(found.plan.modes for found in top.values())
    assert weighed["local"].plan == Plan.parse("local:orin-nano~7W")
    assert weighed["local"].cost_per_sample < top["local"].cost_per_sample
    assert all(weighed[f].cost_per_sample <= top[f].cost_per_sample for f in top)
