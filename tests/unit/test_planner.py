"""The planner: its dynamic programme finds the partition an exhaustive search finds, it never gives a
device a stage it lacks the memory for, and each family's answer is that family's cheapest plan."""

import dataclasses
import itertools
import json
import math

from conftest import run_cli
from edgetrain.core.calibration import default_calibration_path, load_calibration
from edgetrain.core.feasibility import plan_problems
from edgetrain.core.plans import HYBRID, Plan
from edgetrain.core.scenario import load_scenario
from edgetrain.envs.costmodel import CostModel
from edgetrain.envs.planner import Planner


def planner_for(name: str, **model_changes) -> Planner:
    scenario = load_scenario(name)
    calibration = load_calibration(default_calibration_path(scenario))
    if model_changes:
        scenario = dataclasses.replace(scenario, model=dataclasses.replace(scenario.model, **model_changes))
        calibration = dict(calibration, model=dataclasses.asdict(scenario.model))
    return Planner(CostModel(calibration, scenario))


def exhaustive_bottleneck(planner: Planner, ordered: list[str], devices_used: int) -> float:
    """Every way to cut the first `devices_used` devices and every layer into at least two stages."""
    stage = planner.stage_time_table(ordered)
    layers, best = planner.cfg.layers, math.inf
    for stages in range(2, min(devices_used, layers) + 1):
        for device_cuts in itertools.combinations(range(1, devices_used), stages - 1):
            for layer_cuts in itertools.combinations(range(1, layers), stages - 1):
                d = (0,) + device_cuts + (devices_used,)
                lay = (0,) + layer_cuts + (layers,)
                best = min(best, max(stage(d[s], d[s + 1], lay[s], lay[s + 1]) for s in range(stages)))
    return best


def test_the_dynamic_programme_finds_the_best_partition_of_every_prefix():
    planner = planner_for("smart-home", layers=6)  # 5 devices of four speeds, six blocks
    ordered = planner.fastest_first(planner.model.scenario.device_names)
    found = planner.best_partitions(ordered)
    assert [sum(len(g) for g in groups) for _, groups, _ in found] == [2, 3, 4, 5]
    for bottleneck, groups, blocks in found:
        assert sum(blocks) == 6 and all(b >= 1 for b in blocks) and len(groups) >= 2
        assert math.isclose(bottleneck, exhaustive_bottleneck(planner, ordered, sum(len(g) for g in groups)))


def test_no_stage_goes_to_a_device_without_the_memory_for_it():
    scenario = load_scenario("smart-home")
    calibration = load_calibration(default_calibration_path(scenario))
    # The laptop, the fastest, gets memory for one block with the embeddings and a whole batch's rows
    # (64 rows x 96 tokens), not two.
    tight = dataclasses.replace(scenario, devices=tuple(
        dataclasses.replace(d, memory_mb=372) if d.name == "laptop" else d for d in scenario.devices))
    planner = Planner(CostModel(calibration, tight))
    candidates = planner.hybrid_candidates(planner.fastest_first(tight.device_names))
    assert candidates
    for plan in candidates:
        assert not [p for p in plan_problems(plan, tight) if "does not fit" in p], plan
    def laptop_alone_with_more_than_one_block(plan):
        return "laptop" in plan.devices and any(group == ("laptop",) and blocks > 1
                                                for group, blocks in zip(plan.stages, plan.stage_layers))
    unconstrained = planner_for("smart-home").hybrid_candidates(planner.fastest_first(tight.device_names))
    assert any(laptop_alone_with_more_than_one_block(plan) for plan in unconstrained)  # the cap matters
    assert not any(laptop_alone_with_more_than_one_block(plan) for plan in candidates)


def test_each_family_gets_its_cheapest_feasible_plan():
    planner = planner_for("workshop")
    best = planner.best_of_each_family(planner.model.scenario.device_names)
    assert set(best) == {"local", "dp", "pp", "tp", "sp", HYBRID}
    for family, found in best.items():
        assert found.plan.kind == family and found.prediction.fits
        assert found.cost_per_sample == planner.price(found.plan)[1]
    names = planner.model.scenario.device_names
    for kind in ("dp", "pp"):
        for size in range(2, len(names) + 1):
            # dp's cost does not depend on the order; pp is tried in speed order only.
            for group in itertools.combinations(planner.fastest_first(names), size):
                assert best[kind].cost_per_sample <= planner.price(Plan(kind, group))[1] + 1e-9
    for name in names:
        assert best["local"].cost_per_sample <= planner.price(Plan("local", (name,)))[1]


def test_edgetrain_plan_prints_each_family_and_refuses_an_unknown_device(tmp_path):
    result = run_cli("plan", "--scenario", "workshop", "--devices", "xavier-nx,pi4,phone", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["families"]) == {"local", "dp", "pp", "tp", "sp", HYBRID}
    hybrid = report["families"][HYBRID]
    assert set(hybrid["memory_mb"]) <= {"xavier-nx", "pi4", "phone"} and hybrid["fits"]
    assert report["planner_s"] < 5
    bad = run_cli("plan", "--scenario", "workshop", "--devices", "xavier-nx,toaster")
    assert bad.returncode != 0 and "device 'toaster' is not in scenario workshop" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_big_model_fits_no_device_alone_and_the_planner_finds_a_much_cheaper_hybrid():
    """The built-in memory-bound scenario: no device holds the model, no uniform kind but a four-device
    pipeline fits, and the planner's hybrid is predicted at least 20% cheaper (live: benchmarks/
    hybrid_live.py)."""
    planner = planner_for("big-model")
    scenario = planner.model.scenario
    for name in scenario.device_names:
        assert any("does not fit" in p for p in plan_problems(Plan("local", (name,)), scenario)), name
    best = planner.best_of_each_family(scenario.device_names)
    assert set(best) == {"pp", HYBRID}
    assert best["pp"].plan.degree == 4
    assert best[HYBRID].cost_per_sample <= 0.8 * best["pp"].cost_per_sample
    assert best[HYBRID].plan.stage_layers[0] > scenario.model.layers // best[HYBRID].plan.degree  # uneven
