"""The simulator where it is easy to get wrong: a fleet that never comes back, batteries that run out in
the middle of an interval and devices that drain while they are not training, trace files, and
availability and plan resolution checked against references computed here, not by the env."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, TINY, TINY_CALIBRATION
from edgetrain.core.availability import read_trace_file
from edgetrain.core.catalog import get_profile
from edgetrain.core.errors import ScenarioError
from edgetrain.core.feasibility import plan_problems
from edgetrain.core.plans import Plan
from edgetrain.core.rules import BATTERY_CUTOFF_PCT, HEARTBEAT_TIMEOUT_S
from edgetrain.core.scenario import load_scenario, parse_scenario
from edgetrain.envs.actions import random_valid_action
from edgetrain.envs.edgetrain_env import EdgeTrainEnv

TINY_TEXT = open(TINY).read()


def scenario_with(tmp_path, replacements: dict[str, str], traces: dict[str, str] = {}):
    text = TINY_TEXT
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    for name, content in traces.items():
        (tmp_path / name).write_text(content)
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def test_a_fleet_that_never_returns_ends_the_job_instead_of_crashing(tmp_path):
    """Before: `edgetrain evaluate` died with TypeError ('NoneType' object is not subscriptable)."""
    path = scenario_with(tmp_path, {
        "bandwidth_mbps: 50}": "bandwidth_mbps: 50, availability: {kind: trace, file: gone.trace}}",
        "bandwidth_mbps: 40}": "bandwidth_mbps: 40, availability: {kind: trace, file: gone.trace}}",
        "  - {name: c, profile: raspberry-pi-4, cpu_share: 0.2, bandwidth_mbps: 20}\n": ""},
        {"gone.trace": "0 1.5\n"})
    env = EdgeTrainEnv(scenario=str(path), calibration=TINY_CALIBRATION)
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(env.resolve("dp", [0, 1]))
    assert info["failures"] == 1 and not terminated and truncated  # both left at 1.5 s, for good
    _, reward, terminated, truncated, info = env.step(env.resolve("local", [0]))
    assert truncated and reward == 0.0 and info["samples"] == 0 and info["plan"] == "none"
    out = tmp_path / "eval.json"
    result = subprocess.run([sys.executable, "-m", "edgetrain", "evaluate", "--scenario", str(path), "--calibration",
                             TINY_CALIBRATION, "--episodes", "2", "--json", str(out)], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert all(r["completed"] == 0.0 for r in results.values())


def battery_env(tmp_path, wh: float, decision_steps: int = 200):
    path = scenario_with(tmp_path, {"bandwidth_mbps: 20}": f"bandwidth_mbps: 20, battery_wh: {wh}}}"})
    return EdgeTrainEnv(scenario=str(path), calibration=TINY_CALIBRATION, noise=0.0, decision_steps=decision_steps)


def test_a_member_whose_battery_runs_out_mid_interval_fails_the_interval_there(tmp_path):
    """Before: the interval completed in full and the device only left at the next decision."""
    probe = battery_env(tmp_path, 1.0)
    probe.reset(seed=0)
    resolved = probe.resolve("local", [2])
    step_s = resolved.prediction.step_time_s
    training_w = resolved.prediction.energy_j["c"] / step_s
    idle_w = get_profile("raspberry-pi-4").idle_power_w.value
    switch_s = 2.0
    cut_after_s = switch_s + 100.5 * step_s  # halfway through 200 steps
    budget_j = idle_w * switch_s + training_w * 100.5 * step_s
    wh = budget_j / (1 - BATTERY_CUTOFF_PCT / 100) / 3600
    env = battery_env(tmp_path, wh)
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.resolve("local", [2]))
    assert info["failures"] == 1
    assert info["time_s"] == pytest.approx(cut_after_s + HEARTBEAT_TIMEOUT_S, rel=1e-6)
    assert info["samples"] == 100 * 10  # 100 steps trained, all checkpointed (every 5)
    assert env.state.world.battery[2] == pytest.approx(BATTERY_CUTOFF_PCT / 100)  # it left at the cutoff
    assert not env.state.world.available >> 2 & 1  # gone for good
    assert "c" not in env.available_devices()


def test_a_battery_device_drains_its_idle_power_while_others_train(tmp_path):
    """Before: only the plan's members drained."""
    env = battery_env(tmp_path, 5.0)
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.resolve("local", [0]))  # c is not in the plan
    idle_w = get_profile("raspberry-pi-4").idle_power_w.value
    expected = 1.0 - idle_w * info["time_s"] / (5.0 * 3600)
    assert env.state.world.battery[2] == pytest.approx(expected, rel=1e-9)
    assert env.state.world.battery[2] < 1.0


def test_trace_files_are_checked_when_the_scenario_loads(tmp_path):
    """Before: a malformed trace loaded, and killed the testbed's availability thread later."""
    path = scenario_with(tmp_path, {"bandwidth_mbps: 20}": "bandwidth_mbps: 20, availability: {kind: trace, "
                                                           "file: bad.trace}}"}, {"bad.trace": "0 10\n5 oops\n"})
    with pytest.raises(ScenarioError, match=r"devices\[2\]\.availability\.file: availability trace .*bad.trace, "
                                            r"line 2: expected 'start_s end_s'"):
        load_scenario(str(path))
    (tmp_path / "bad.trace").write_text("0 10\n8 12\n")
    with pytest.raises(ScenarioError, match="line 2: intervals must be increasing, disjoint"):
        load_scenario(str(path))


def test_touching_intervals_are_one_interval(tmp_path):
    """Before: `0 4` then `4 10` took the device off and on again at 4 s."""
    trace = tmp_path / "t.trace"
    trace.write_text("0 4\n4 10  # touches\n12 15\n")
    assert read_trace_file(trace) == [(0.0, 10.0), (12.0, 15.0)]


def test_masks_follow_the_trace_file_at_every_decision(tmp_path):
    """The mask against availability computed here from the trace files themselves."""
    traces = {"a.trace": "0 30\n45 400\n", "b.trace": "10 60\n70 90\n200 400\n"}
    path = scenario_with(tmp_path, {
        "target_samples: 1200": "target_samples: 1000000",  # a job long enough to see the traces through
        "bandwidth_mbps: 50}": "bandwidth_mbps: 50, availability: {kind: trace, file: a.trace}}",
        "bandwidth_mbps: 40}": "bandwidth_mbps: 40, availability: {kind: trace, file: b.trace}}"}, traces)
    intervals = {0: [(0, 30), (45, 400)], 1: [(10, 60), (70, 90), (200, 400)], 2: [(0, float("inf"))]}
    env = EdgeTrainEnv(scenario=str(path), calibration=TINY_CALIBRATION, decision_steps=50)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        t = env.state.world.t
        mask = env.action_masks()
        offered = {i for plan in env.offered for i in plan.slots}
        possible = {i for plan in env.candidate_plans() for i in plan.slots}
        for slot in range(3):
            online = any(start <= t < end for start, end in intervals[slot])
            assert (slot in possible) == online and (slot not in offered or online), (slot, t)
            seen.add((slot, online))
        assert mask.sum() == len(env.offered) > 0
        _, _, terminated, truncated, _ = env.step(random_valid_action(mask, rng))
        if terminated or truncated:
            env.reset(seed=len(seen))
    assert {(0, False), (1, False), (1, True)} <= seen


def test_a_truly_infeasible_choice_on_smart_home_runs_the_next_kind_on_the_same_devices():
    env = EdgeTrainEnv()  # smart-home: 6 heads, so tensor parallelism over 4 devices cannot run
    env.reset(seed=0)
    env.state = dataclasses.replace(env.state, world=dataclasses.replace(env.state.world, available=0b11111))
    four = ("laptop", "orin-nano", "xavier-nx", "pi4")
    assert plan_problems(Plan("tp", four), env.scenario)
    resolved = env.resolve("tp", [env.names.index(d) for d in four])
    assert resolved.plan == Plan("dp", four)  # FALLBACK_KINDS: dp first
    assert not plan_problems(resolved.plan, env.scenario)


def test_a_reset_on_a_scenario_parsed_from_text_is_the_same_as_from_its_file(tmp_path):
    """Traces resolve relative to the scenario file whichever way it is loaded."""
    path = scenario_with(tmp_path, {"bandwidth_mbps: 50}": "bandwidth_mbps: 50, availability: {kind: trace, "
                                                           "file: a.trace}}"}, {"a.trace": "5 50\n"})
    first = EdgeTrainEnv(scenario=str(path), calibration=TINY_CALIBRATION)
    second = EdgeTrainEnv(scenario=parse_scenario(path.read_text(), str(path)), calibration=TINY_CALIBRATION)
    assert np.array_equal(first.reset(seed=1)[0], second.reset(seed=1)[0])


def test_a_charger_keeps_a_training_battery_device_up_and_brings_a_flat_one_back(tmp_path):
    """charging_hours in the simulator: plugged in all day with a charger stronger than its draw, the
    Pi trains 200 steps without leaving; plugged in only after a while, it runs flat, charges, and is
    available again once at 20%."""
    from edgetrain.core.rules import BATTERY_RETURN_PCT
    plugged = scenario_with(tmp_path, {"bandwidth_mbps: 20}": "bandwidth_mbps: 20, battery_wh: 0.02, "
                                                              "battery_initial_pct: 15, charging_hours: [[0, 24]], "
                                                              "charge_w: 50}"})
    env = EdgeTrainEnv(scenario=str(plugged), calibration=TINY_CALIBRATION, noise=0.0, decision_steps=200)
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.resolve("local", [2]))
    assert info["failures"] == 0 and env.state.world.battery[2] > 0.15  # charged while training
    later = scenario_with(tmp_path, {"bandwidth_mbps: 20}": "bandwidth_mbps: 20, battery_wh: 0.02, "
                                                            "battery_initial_pct: 15, charging_hours: [[0.05, 24]], "
                                                            "charge_w: 2}",
                                     "target_samples: 1200": "target_samples: 1000000"})
    env = EdgeTrainEnv(scenario=str(later), calibration=TINY_CALIBRATION, noise=0.0, decision_steps=50)
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.resolve("local", [2]))
    assert info["failures"] == 1 and "c" not in env.available_devices()  # flat before 0:03
    seen_back = False
    for _ in range(400):  # the others train; from 0:03 the Pi charges at 2 W
        env.step(env.resolve("local", [0]))
        if "c" in env.available_devices():
            seen_back = True
            break
    assert seen_back and env.state.world.battery[2] >= BATTERY_RETURN_PCT / 100
    assert env.state.world.t >= 0.05 * 3600


def test_when_every_device_ran_flat_the_job_waits_for_a_charger_and_pays_the_wait(tmp_path):
    """Before: with every battery flat the simulator ended the episode (truncated, job unfinished) though
    a charger would bring a device back; a planner that drained everything looked no worse for it. Now
    time passes until the first device is charged to BATTERY_RETURN_PCT, and the wait is in the job's time."""
    from edgetrain.core.rules import BATTERY_RETURN_PCT
    battery = ", battery_wh: 0.01, battery_initial_pct: 30, charging_hours: [[2, 3]], charge_w: 1}"
    path = scenario_with(tmp_path, {"bandwidth_mbps: 50}": "bandwidth_mbps: 50" + battery,
                                    "bandwidth_mbps: 40}": "bandwidth_mbps: 40" + battery,
                                    "bandwidth_mbps: 20}": "bandwidth_mbps: 20" + battery,
                                    "target_samples: 1200": "target_samples: 1000000"})
    env = EdgeTrainEnv(scenario=str(path), calibration=TINY_CALIBRATION, noise=0.0, decision_steps=50)
    env.reset(seed=0)
    flat_at, truncated, info = None, False, None
    for _ in range(200):
        _, _, _, truncated, info = env.step(env.resolve("dp", [0, 1, 2]) if env.state.world.available == 7
                                            else env.candidate_plans()[0])
        if flat_at is None and info["time_s"] > 3600:  # the interval that waited for the charger
            flat_at = info
            break
        assert not truncated
    assert flat_at is not None, "the job never waited for a charger"
    world = env.state.world
    assert 2 * 3600 < world.t < 3 * 3600  # back during the charging window, not before it
    # 1 W into 36 J batteries: from 10% the first device is back after (20% - 10%) * 36 J / 1 W = 3.6 s
    assert world.t == pytest.approx(2 * 3600 + 0.1 * 36.0, abs=1.0)
    assert any(world.battery[i] >= BATTERY_RETURN_PCT / 100 - 1e-6 for i in range(3) if world.available >> i & 1)
    assert info["job"].time_s >= world.t - 1e-6  # the wait is paid in time


def test_charged_at_counts_only_the_plugged_hours():
    from edgetrain.core.availability import charged_at_s
    # From 23:00 with a 22:00-06:00 window at 2 W, 10 kJ takes 5000 s of charging: all inside the window.
    assert charged_at_s(((22.0, 24.0), (0.0, 6.0)), 23.0, 0.0, 2.0, 10_000.0) == pytest.approx(5000.0)
    # From 07:00 with a 09:00-10:00 window at 1 W, 5400 J: 3600 J today, 1800 J from 09:00 tomorrow.
    assert charged_at_s(((9.0, 10.0),), 7.0, 0.0, 1.0, 5400.0) == pytest.approx(2 * 3600 + 24 * 3600 + 1800)
    assert charged_at_s(None, 7.0, 0.0, 1.0, 5.0) == float("inf")
    assert charged_at_s(((9.0, 10.0),), 7.0, 100.0, 1.0, 0.0) == 100.0


def test_plugged_seconds_count_the_daily_windows_across_midnight():
    from edgetrain.core.availability import hours_overlap_s
    night = ((0.0, 6.0), (22.0, 24.0))
    assert hours_overlap_s(night, 21.0, 0.0, 3 * 3600.0) == pytest.approx(2 * 3600.0)  # 21:00-24:00
    assert hours_overlap_s(night, 23.0, 0.0, 8 * 3600.0) == pytest.approx(7 * 3600.0)  # 23:00-7:00
    assert hours_overlap_s(night, 12.0, 0.0, 36 * 3600.0) == pytest.approx(10 * 3600.0)  # noon to the next midnight: 2 + 6 + 2 h
    assert hours_overlap_s(None, 0.0, 0.0, 1e6) == 0.0
