"""The one cost a plan is judged by: Zeus's energy-time cost, `eta * energy + (1 - eta) * max_power * time`.

Every consumer (the environment's reward, the baselines' predictions, evaluation, deployment) calls
`EnergyTimeCost.zeus_cost`, so an interval is priced the same wherever it is priced.

`max_power_w` turns seconds into joules. It is fixed per scenario: the sum of the active power of every
device the scenario lists, whichever of them are available, chosen or (under fleet randomisation)
dealt into an episode. So one scenario's rewards are on one scale across all its episodes, and a
policy trained on random sub-fleets of a scenario is not rewarded more gently on small fleets.
(Zeus uses one GPU's power limit the same way: a constant of the hardware, not of the decision.)
"""

from __future__ import annotations

from dataclasses import dataclass

from edgetrain.core.catalog import get_profile
from edgetrain.core.config import Scenario


@dataclass(frozen=True)
class EnergyTimeCost:
    eta: float
    """Zeus trade-off knob in [0, 1]: 1 counts energy only, 0 time only."""
    max_power_w: float
    """Watts that one second of time is worth (the scenario's whole fleet at full load)."""

    @classmethod
    def of(cls, scenario: Scenario) -> "EnergyTimeCost":
        return cls(scenario.objective.eta, scenario_max_power_w(scenario))

    def zeus_cost(self, energy_j: float, time_s: float) -> float:
        return self.eta * energy_j + (1 - self.eta) * self.max_power_w * time_s


def scenario_max_power_w(scenario: Scenario) -> float:
    return sum(get_profile(device.profile).active_power_w.value for device in scenario.devices)
