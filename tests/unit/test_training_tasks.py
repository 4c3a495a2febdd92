"""What the policy trains on besides the scenarios as shipped: their fleets on faster and slower links,
taken in turn episode by episode; and the offer scorer's symmetry."""

import numpy as np
import pytest
import torch

from edgetrain.agents.train import LINK_FACTORS, Task, TaskCycle, TrainConfig, with_links_scaled, with_varied_links
from edgetrain.core.calibration import check_calibration_matches, default_calibration_path, load_calibration
from edgetrain.core.scenario import load_scenario
from edgetrain.envs.edgetrain_env import EdgeTrainEnv


@pytest.fixture(scope="module")
def home():
    scenario = load_scenario("smart-home")
    return Task(scenario, load_calibration(default_calibration_path(scenario)))


def test_scaled_links_make_transfers_faster_beyond_their_latency_and_still_match_the_scenario(home):
    faster = with_links_scaled(home, 4.0)
    check_calibration_matches(faster.calibration, faster.scenario)  # no complaint: it still matches
    assert [d.bandwidth_mbps for d in faster.scenario.devices] == [4 * d.bandwidth_mbps for d in home.scenario.devices]
    link, scaled = home.calibration["links"]["laptop->orin-nano"], faster.calibration["links"]["laptop->orin-nano"]
    assert scaled["latency_s"] == link["latency_s"]
    for size, seconds in link["transfer_s"].items():
        assert scaled["transfer_s"][size] - link["latency_s"] == pytest.approx((seconds - link["latency_s"]) / 4)
    assert home.calibration["links"]["laptop->orin-nano"] is link  # the original is left as it was
    # Slower links make data parallelism dearer against one device alone: the cost model sees it.
    plans = {}
    for factor in (0.25, 1.0, 4.0):
        task = with_links_scaled(home, factor)
        env = EdgeTrainEnv(scenario=task.scenario, calibration=task.calibration)
        env.reset(seed=0)
        both = env.resolve("dp", [env.names.index("laptop"), env.names.index("orin-nano")])
        alone = env.resolve("local", [env.names.index("laptop")])
        plans[factor] = env.predicted_cost_per_sample(both) / env.predicted_cost_per_sample(alone)
    assert plans[0.25] > plans[1.0] > plans[4.0]
    assert len(with_varied_links([home])) == 1 + len(LINK_FACTORS)


def test_a_simulator_slot_takes_the_tasks_in_turn_reproducibly(home):
    tasks = with_varied_links([home])
    config = TrainConfig(decision_steps=10)
    cycle = TaskCycle(tasks, 1, config)
    seen, first_obs = [], []
    cycle.reset(seed=7)
    for _ in range(2 * len(tasks)):
        seen.append(cycle.current)
        obs, _ = cycle.reset()
        first_obs.append(obs)
        assert cycle.action_masks()[0]
        cycle.step(0)
    order = [cycle.envs.index(env) for env in seen]
    n = len(tasks)
    assert order == [(1 + k) % n for k in range(2 * n)]
    again = TaskCycle(tasks, 1, config)
    again.reset(seed=7)
    replay = [again.reset()[0] for _ in range(len(first_obs))]
    assert all(np.array_equal(a, b) for a, b in zip(first_obs, replay))


def test_the_offer_scorer_scores_a_plan_the_same_whichever_row_it_is_in():
    """Permuting the offered rows permutes the logits the same way and leaves the value unchanged."""
    from edgetrain.agents.scorer import OfferScorer
    from edgetrain.envs.candidates import CANDIDATE_FEATURES, MAX_CANDIDATES
    torch.manual_seed(0)
    scorer = OfferScorer([32, 32])
    rows = torch.rand(3, MAX_CANDIDATES, CANDIDATE_FEATURES)
    rows[:, :, 0] = 1.0
    rows[:, 12:, :] = 0.0  # four empty rows
    job = torch.rand(3, 6)
    observation = torch.cat([rows.reshape(3, -1), job], dim=1)
    order = torch.cat([torch.randperm(12), torch.arange(12, MAX_CANDIDATES)])
    permuted = torch.cat([rows[:, order].reshape(3, -1), job], dim=1)
    logits, value = scorer(observation)
    logits_p, value_p = scorer(permuted)
    assert torch.allclose(logits[:, order], logits_p, atol=1e-6)
    assert torch.allclose(value, value_p, atol=1e-6)
    assert not torch.allclose(logits[:, 0], logits[:, 1])  # rows are told apart by their features
