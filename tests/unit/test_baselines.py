"""The baselines on fixed seeds, episode by episode: the orderings that must hold where they do, and
evaluation's figures consistent with the one cost formula."""

import pytest

from edgetrain.agents.evaluate import evaluate
from edgetrain.core.calibration import default_calibration_path, load_calibration
from edgetrain.core.objective import EnergyTimeCost
from edgetrain.core.scenario import load_scenario


@pytest.mark.parametrize("name", ["smart-home", "smart-home-busy", "workshop"])
def test_clairvoyant_then_greedy_then_all_devices_on_every_episode(name):
    scenario = load_scenario(name)
    report = evaluate(scenario, load_calibration(default_calibration_path(scenario)), None, 5, seed=2000)
    per_episode = report["per_episode_zeus_cost"]
    for episode, (oracle, greedy, all_dp, single) in enumerate(zip(
            per_episode["oracle"], per_episode["greedy"], per_episode["all_dp"], per_episode["fastest_single"])):
        # Knowing the future and judging plans over their lifetime never loses to greedy here; greedy's
        # cheapest plan beats both rules of thumb (on these fleets every device at once, and the fastest
        # alone, cost more than the laptop and the Orin together).
        assert oracle <= greedy + 1e-12, (episode, oracle, greedy)
        assert greedy < all_dp and greedy < single, (episode, greedy, all_dp, single)
    results = report["results"]
    assert results["greedy"]["zeus_cost"] < results["random"]["zeus_cost"]
    cost = EnergyTimeCost.of(scenario)
    for contender, figures in results.items():
        assert figures["completed"] == 1.0, contender
        assert figures["zeus_cost"] == pytest.approx(
            cost.zeus_cost(figures["energy_per_sample_j"], figures["time_per_sample_s"]), rel=1e-9), contender
