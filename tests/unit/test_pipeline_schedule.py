"""The replays the cost model prices pipelines with (edgetrain.envs.pipeline_schedule): torch's
Schedule1F1B for pp and the hand-written GPipe of hybrid plans, against what can be worked out by hand,
and the exchange time pp draws from a calibration."""

import copy

import pytest

from edgetrain.core.calibration import default_calibration_path, load_calibration
from edgetrain.core.plans import Plan
from edgetrain.core.scenario import load_scenario
from edgetrain.envs.costmodel import CostModel
from edgetrain.envs.pipeline_schedule import BoundaryCosts, GroupMember, StageCosts, gpipe_hybrid_s, one_f_one_b_s

FREE = BoundaryCosts(0.0, 0.0, 0.0)


@pytest.mark.parametrize("stages", [2, 3, 4])
@pytest.mark.parametrize("extra", [0, 1, 4])
def test_equal_stages_over_free_links_take_the_textbook_1f1b_time(stages, extra):
    """(M + S - 1) x (forward + backward): the pipeline's fill and drain plus one slot per micro-batch."""
    micro = stages + extra
    assert one_f_one_b_s([StageCosts(1.0, 2.0)] * stages, [FREE] * (stages - 1), micro) == pytest.approx(
        (micro + stages - 1) * 3.0)


def test_one_microbatch_crosses_every_stage_and_boundary_both_ways_in_turn():
    link = BoundaryCosts(forward_s=0.5, backward_s=0.7, exchange_s=5.0)  # nothing is in flight at once
    step = one_f_one_b_s([StageCosts(1.0, 2.0), StageCosts(3.0, 4.0)], [link], 1)
    assert step == pytest.approx(1.0 + 0.5 + 3.0 + 4.0 + 0.7 + 2.0)


def test_a_send_is_not_hidden_behind_compute_and_the_steady_phase_pays_the_exchange():
    """Two equal stages, transfers of 1 s alone: each micro-batch after the first adds its compute (3 s)
    and a transfer (1 s), which the schedule waits for; each of those M - 1 steady-phase slots carries an
    activation and a gradient at once, so an exchange slower than a one-way transfer costs (M - 1) x the
    difference."""
    stages = [StageCosts(1.0, 2.0)] * 2
    full_duplex = [one_f_one_b_s(stages, [BoundaryCosts(1.0, 1.0, 1.0)], m) for m in (1, 2, 4)]
    half_duplex = [one_f_one_b_s(stages, [BoundaryCosts(1.0, 1.0, 2.0)], m) for m in (1, 2, 4)]
    assert full_duplex == pytest.approx([8.0, 12.0, 20.0])
    assert [h - f for h, f in zip(half_duplex, full_duplex)] == pytest.approx([0.0, 1.0, 3.0])


def test_a_replay_needs_a_boundary_between_each_two_stages():
    with pytest.raises(ValueError):
        one_f_one_b_s([StageCosts(1.0, 1.0)] * 3, [FREE], 4)


def test_the_cost_model_prices_a_pipeline_with_the_measured_exchange_and_without_it_as_full_duplex():
    scenario = load_scenario()
    calibration = load_calibration(default_calibration_path(scenario))
    plan = Plan("pp", ("laptop", "orin-nano"))
    without = copy.deepcopy(calibration)
    for link in without["links"].values():
        link.pop("exchange_s", None)
    slow = copy.deepcopy(without)
    for link in slow["links"].values():
        link["exchange_s"] = {size: 3 * seconds for size, seconds in link["transfer_s"].items()}
    full_duplex = CostModel(without, scenario)
    assert full_duplex.exchange_s("laptop", "orin-nano", 1 << 20) == pytest.approx(
        max(full_duplex.transfer_s("laptop", "orin-nano", 1 << 20), full_duplex.transfer_s("orin-nano", "laptop", 1 << 20)))
    assert CostModel(slow, scenario).predict(plan).step_time_s > full_duplex.predict(plan).step_time_s
    # dp's all-reduce uses both directions at full speed: the exchange does not price it.
    dp = Plan("dp", ("laptop", "orin-nano"))
    assert CostModel(slow, scenario).predict(dp).step_time_s == pytest.approx(full_duplex.predict(dp).step_time_s)


@pytest.mark.parametrize("stages", [2, 3])
@pytest.mark.parametrize("micro", [1, 2, 4])
def test_a_gpipe_of_equal_single_device_stages_over_free_links_takes_the_textbook_time(stages, micro):
    """Every forward, then every backward: (M + S - 1) x (forward + backward), as for 1F1B."""
    plan = [[GroupMember(f"d{s}", (1.0,) * micro, (2.0,) * micro)] for s in range(stages)]
    handoffs = {(m, s, 0, 0): (0.0, 0.0) for m in range(micro) for s in range(stages - 1)}
    assert gpipe_hybrid_s(plan, handoffs) == pytest.approx((micro + stages - 1) * 3.0)


def test_a_device_sends_its_pieces_to_a_wider_stage_one_after_another_and_gets_their_gradients_in_turn():
    """a hands its rows to b and c (1 s each over its uplink): c has its piece at 2 s, not 1 s; their
    gradients share a's downlink the same way, so a has both at 3 s."""
    plan = [[GroupMember("a", (0.0,), (0.0,))], [GroupMember("b", (0.0,), (0.0,)), GroupMember("c", (0.0,), (0.0,))]]
    assert gpipe_hybrid_s(plan, {(0, 0, 0, 0): (1.0, 1.0), (0, 0, 0, 1): (1.0, 1.0)}) == pytest.approx(3.0)
    # Two senders to one receiver share its downlink (c has both pieces at 2 s), and its two gradients
    # go back one after another over its uplink (b has its own at 4 s).
    merged = [[GroupMember("a", (0.0,), (0.0,)), GroupMember("b", (0.0,), (0.0,))], [GroupMember("c", (0.0,), (0.0,))]]
    assert gpipe_hybrid_s(merged, {(0, 0, 0, 0): (1.0, 1.0), (0, 0, 1, 0): (1.0, 1.0)}) == pytest.approx(4.0)
