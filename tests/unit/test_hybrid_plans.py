"""Hybrid plans (pipeline stages, each data-parallel over a group): what a person writes, what is
refused before any process starts, how memory, the cost model and recovery see them. That they train
exactly like one device is tests/distributed/test_runtime.py."""

import json

import pytest

from conftest import TINY, TINY_CALIBRATION
from edgetrain.core.errors import PlanError
from edgetrain.core.feasibility import plan_problems
from edgetrain.core.memory import estimate_memory
from edgetrain.core.plans import Plan
from edgetrain.core.scenario import load_scenario
from edgetrain.core.sizing import hybrid_layer_ranges, hybrid_microbatches, hybrid_rows
from edgetrain.envs.costmodel import CostModel
from edgetrain.runtime.coordinator.recovery import replan
from edgetrain.runtime.wire.spec import ShardSpec

SCENARIO = load_scenario(TINY)  # devices a, b, c; 3 layers; batch 10


def test_a_hybrid_plan_reads_as_written_and_prints_back_the_same():
    plan = Plan.parse("hybrid:orin-nano+xavier-nx=3/pi4=1@4")
    assert plan.stages == (("orin-nano", "xavier-nx"), ("pi4",))
    assert plan.devices == ("orin-nano", "xavier-nx", "pi4") and plan.degree == 3
    assert plan.stage_layers == (3, 1) and plan.microbatches == 4
    assert str(plan) == "hybrid:orin-nano+xavier-nx=3/pi4=1@4"
    assert Plan.parse(str(Plan.parse("hybrid: a + b / c"))) == Plan.parse("hybrid:a+b/c")


@pytest.mark.parametrize("text, reason", [
    ("hybrid:a+b", "at least two stages"),
    ("hybrid:a=1/b", "give =N on every stage or on none"),
    ("hybrid:a=0/b=3", "at least one block"),
    ("hybrid:a//b", "a stage without devices"),
    ("hybrid:a/b@x", "whole number"),
    ("hybrid:a/b@0", "at least one micro-batch"),
    ("hybrid:a=x/b=1", "whole number"),
    ("hybrid:a+b/a", "names a device twice"),
])
def test_a_malformed_hybrid_plan_is_refused_with_its_reason(text, reason):
    with pytest.raises(PlanError, match=reason) as error:
        Plan.parse(text)
    assert "\n" not in str(error.value)


def test_only_hybrid_plans_have_stages():
    with pytest.raises(PlanError, match="only hybrid plans have stages"):
        Plan("dp", ("a", "b"), group_sizes=(1, 1))


@pytest.mark.parametrize("text, reason", [
    ("hybrid:a=2/b=2", "blocks add up to 4, the model has 3"),
    ("hybrid:a+b=2/c=1@6", "6 micro-batches of batch_size 10 leave fewer rows than the 2 devices"),
])
def test_an_infeasible_hybrid_plan_is_refused_before_it_starts(text, reason):
    problems = plan_problems(Plan.parse(text), SCENARIO)
    assert len(problems) == 1 and reason in problems[0]


def test_stages_rows_and_micro_batches_cover_the_batch_once():
    plan = Plan.parse("hybrid:a+b=2/c=1@3")
    assert [list(r) for r in hybrid_layer_ranges(plan, 3)] == [[0, 1], [2]]
    assert [list(r) for r in hybrid_layer_ranges(Plan.parse("hybrid:a/b/c"), 3)] == [[0], [1], [2]]
    for stage, group in enumerate(plan.stages):
        rows = sorted(i for member in range(len(group)) for r in hybrid_rows(plan, 10, stage, member) for i in r)
        assert rows == list(range(10))
    # The default fills the pipeline (twice the stages) while the widest group still gets rows.
    assert hybrid_microbatches(Plan.parse("hybrid:a/b"), 10) == 4
    assert hybrid_microbatches(Plan.parse("hybrid:a+b+c/d"), 10) == 3


def test_memory_counts_each_stage_its_blocks_and_each_member_its_rows():
    plan = Plan.parse("hybrid:a+b=1/c=2")
    need = {e.device: e.need_mb for e in estimate_memory(plan, SCENARIO)}
    uneven = {e.device: e.need_mb for e in estimate_memory(Plan.parse("hybrid:a=2/c=1"), SCENARIO)}
    assert need["c"] > need["a"]  # two blocks, the head, and every row of the batch
    assert uneven["a"] > need["a"]  # one device holds what two shared, and two blocks


def test_the_cost_model_prices_a_data_parallel_stage_and_its_traffic():
    model = CostModel(json.loads(open(TINY_CALIBRATION).read()), SCENARIO)
    pipeline = model.predict(Plan.parse("hybrid:a=1/b=1/c=1"))
    grouped = model.predict(Plan.parse("hybrid:a+b=2/c=1"))
    assert pipeline.fits and grouped.fits
    # The group all-reduces its two blocks' gradients: far more bytes than activations alone.
    assert grouped.bytes_sent["a"] > 4 * pipeline.bytes_sent["a"]
    assert grouped.bytes_sent["c"] == pipeline.bytes_sent["c"]  # c only sends gradients of what it got
    assert grouped.step_time_s > 0 and grouped.total_energy_j > 0


def test_a_lost_device_leaves_a_smaller_hybrid_whose_stage_blocks_move_to_a_neighbour():
    plan = Plan.parse("hybrid:a+b=2/c=1")
    assert replan(plan, ["a", "c"], SCENARIO) == Plan.parse("hybrid:a=2/c=1")
    assert replan(plan, ["a", "b"], SCENARIO) == Plan.parse("dp:a,b")  # one stage left: another kind
    assert Plan.parse("hybrid:a=1/b=1/c=1").without({"a"}) == Plan.parse("hybrid:b=2/c=1")
    assert Plan.parse("hybrid:a=1/b=1/c=1").without({"b"}) == Plan.parse("hybrid:a=2/c=1")


def test_a_shard_spec_carries_a_hybrid_layout_and_refuses_a_wrong_one():
    base = dict(rank=0, world_size=3, device="a", master_addr="127.0.0.1", master_port=1234, model={},
                seed=0, steps=1, profile="laptop", cores=1.0)
    spec = ShardSpec(kind="hybrid", layout="hybrid:a+b=2/c=1", **base)
    assert ShardSpec.from_json(spec.to_json()) == spec
    for layout, kind in [(None, "hybrid"), ("hybrid:a/b", "hybrid"), ("hybrid:a/b/c", "dp"), ("hybrid:a+b", "hybrid")]:
        with pytest.raises(ValueError):
            ShardSpec(kind=kind, layout=layout, **base)


def test_the_env_offers_the_planners_hybrid_plan_and_marks_its_kind():
    """Greedy, the references and the policy choose among the env's offer: it holds the cheapest hybrid
    plan on the available devices (the planner's), with the hybrid column of the kind one-hot set."""
    from edgetrain.core.calibration import default_calibration_path, load_calibration
    from edgetrain.envs.candidates import CANDIDATE_FEATURES
    from edgetrain.envs.edgetrain_env import EdgeTrainEnv
    scenario = load_scenario("smart-home")
    env = EdgeTrainEnv(scenario=scenario, calibration=load_calibration(default_calibration_path(scenario)))
    obs, _ = env.reset(seed=0)
    hybrids = [row for row, offered in enumerate(env.offered) if offered.plan.kind == "hybrid"]
    every_hybrid = [c for c in env.candidate_plans() if c.plan.kind == "hybrid"]
    cheapest = min(every_hybrid, key=env.predicted_cost_per_sample)
    assert cheapest.plan in {env.offered[row].plan for row in hybrids}
    # One per device set: the planner's choice on all the available devices is among them.
    best = env.fleet.planner.best_hybrid(env.available_devices())
    assert best is not None and best.plan in {c.plan for c in every_hybrid}
    features = obs[:len(env.offered) * CANDIDATE_FEATURES].reshape(len(env.offered), CANDIDATE_FEATURES)
    for row in range(len(env.offered)):
        assert features[row, 18] == (1.0 if row in hybrids else 0.0)
        assert features[row, 13:19].sum() == 1.0


def test_a_hybrid_whose_device_left_before_it_started_runs_without_it():
    """The world may move between an observation and its action (live): the chosen hybrid then runs on
    the devices still there, as recovery would run it."""
    from edgetrain.core.calibration import default_calibration_path, load_calibration
    from edgetrain.envs.edgetrain_env import EdgeTrainEnv
    scenario = load_scenario("smart-home")
    env = EdgeTrainEnv(scenario=scenario, calibration=load_calibration(default_calibration_path(scenario)))
    env.reset(seed=0)
    chosen = env.fleet.hybrid(tuple(range(env.fleet.n)))  # every device
    gone = chosen.slots[-1]
    smaller = env.fleet.without(chosen, sum(1 << i for i in chosen.slots if i != gone))
    assert smaller.plan == chosen.plan.without({env.fleet.names[gone]}) or smaller.plan.kind != "hybrid"
    assert env.fleet.names[gone] not in smaller.plan.devices and smaller.prediction.fits
