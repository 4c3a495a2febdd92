"""An episode's devices in their slots, and what depends only on them (cached per fleet): the speed
order, the plan every (kind, devices) choice resolves to, and the plans that can run on each set of
available devices."""

from __future__ import annotations

import copy
from itertools import combinations
from typing import Optional

from edgetrain.core.catalog import get_profile
from edgetrain.core.config import Scenario
from edgetrain.core.feasibility import plan_problems
from edgetrain.core.plans import FALLBACK_KINDS, HYBRID, PLAN_KINDS, Plan
from edgetrain.envs.costmodel import CostModel
from edgetrain.envs.planner import Planner, power_mode_variants
from edgetrain.envs.state import ResolvedPlan

EXHAUSTIVE_UP_TO = 8
"""Up to this many available devices every subset is a plan's device set (255 sets at 8); beyond, the
sets are the prefixes of three orderings of the devices (see `SlotFleet.candidates`)."""


class SlotFleet:
    """The devices of `scenario`, slot i holding its i-th device."""

    def __init__(self, scenario: Scenario, cost: CostModel, power_modes: bool = True):
        self.scenario = scenario
        self.cost = cost
        self.power_modes = power_modes
        """Whether plans with devices in lower power modes are candidates (the simulator's; the live
        runtime cannot set a device's mode yet)."""
        self.names: tuple[str, ...] = tuple(scenario.device_names)
        self.n = len(self.names)
        self.powers = [get_profile(d.profile) for d in scenario.devices]
        self.battery_j: list[Optional[float]] = [d.battery_wh * 3600 if d.battery_wh else None
                                                 for d in scenario.devices]
        local_times = [cost.predict(Plan("local", (name,))).step_time_s for name in self.names]
        self.slowest_local_s = max(local_times)
        self.speed_order: list[int] = sorted(range(self.n), key=lambda i: local_times[i])  # fastest first
        self._rank = {slot: rank for rank, slot in enumerate(self.speed_order)}
        local_energy = [cost.predict(Plan("local", (name,))).total_energy_j for name in self.names]
        self._orders = (self.speed_order, sorted(range(self.n), key=lambda i: local_energy[i]),
                        sorted(range(self.n), key=lambda i: -scenario.devices[i].bandwidth_mbps))
        self._resolved: dict[tuple[int, int], ResolvedPlan] = {}
        self._candidates: dict[int, list[ResolvedPlan]] = {}
        self._hybrids: dict[tuple[int, ...], Optional[ResolvedPlan]] = {}
        self.planner = Planner(cost)

    def for_episode(self, scenario: Scenario) -> "SlotFleet":
        """The same devices in the same slots with the episode's availability (fleet randomisation
        varies it); everything cached is shared, as it depends on the devices alone."""
        episode = copy.copy(self)
        episode.scenario = scenario
        return episode

    def slots_of(self, mask: int) -> list[int]:
        return [i for i in range(self.n) if mask >> i & 1]

    def resolve(self, kind: str, selected: int) -> ResolvedPlan:
        """The plan that (kind, selected devices) stands for: that kind when it can run on them, else
        another kind on the same devices (FALLBACK_KINDS order), else the same without the slowest
        device, down to the fastest one alone. `selected` must not be empty."""
        key = (PLAN_KINDS.index(kind), selected)
        resolved = self._resolved.get(key)
        if resolved is None:
            resolved = self._resolved[key] = self._with_prediction(self._kind_and_slots(kind, selected))
        return resolved

    def _kind_and_slots(self, kind: str, selected: int) -> tuple[str, tuple[int, ...]]:
        chosen = sorted(self.slots_of(selected), key=self._rank.__getitem__)  # fastest first
        if kind == "local" or len(chosen) == 1:
            return "local", (chosen[0],)
        while len(chosen) > 1:
            group = tuple(sorted(chosen))
            for candidate in [kind] + [k for k in FALLBACK_KINDS if k != kind]:
                if not plan_problems(Plan(candidate, tuple(self.names[i] for i in group)), self.scenario):
                    return candidate, group
            chosen.pop()  # drop the slowest
        return "local", (chosen[0],)

    def without(self, resolved: ResolvedPlan, selected: int) -> ResolvedPlan:
        """The plan on those of its devices in `selected` (not empty): a hybrid keeps its pipeline less the
        missing devices when it still can run, else (and for other kinds) as `resolve` resolves it."""
        kind = resolved.plan.kind
        if kind == HYBRID:
            missing = {self.names[i] for i in resolved.slots if not selected >> i & 1}
            smaller = resolved.plan.without(missing)
            if smaller is not None and not plan_problems(smaller, self.scenario):
                return self._resolved_plan(smaller, self.cost.predict(smaller))
            kind = "pp"
        return self.resolve(kind, selected)

    def hybrid(self, group: tuple[int, ...]) -> Optional[ResolvedPlan]:
        """The planner's cheapest hybrid plan over exactly these slots (None when none can run)."""
        if group not in self._hybrids:
            found = self.planner.best_hybrid([self.names[i] for i in group])
            self._hybrids[group] = None if found is None else self._resolved_plan(found.plan, found.prediction)
        return self._hybrids[group]

    def priced(self, plan: Plan) -> ResolvedPlan:
        """`plan` (on devices of this fleet) with this fleet's cost model's prediction."""
        return self._resolved_plan(plan, self.cost.predict(plan))

    def _with_prediction(self, kind_and_slots: tuple[str, tuple[int, ...]]) -> ResolvedPlan:
        kind, slots = kind_and_slots
        plan = Plan(kind, tuple(self.names[i] for i in slots))
        return self._resolved_plan(plan, self.cost.predict(plan))

    def _resolved_plan(self, plan: Plan, prediction) -> ResolvedPlan:
        slots = tuple(self.names.index(name) for name in plan.devices)
        return ResolvedPlan(plan, slots, prediction, tuple(prediction.energy_j[self.names[i]] for i in slots),
                            sum(self.powers[i].idle_power_w.value for i in slots))

    def candidates(self, available: int) -> list[ResolvedPlan]:
        """Distinct plans on the available devices, as (kind, devices) choices resolve them, and the
        planner's cheapest hybrid plan on each device set: every subset up to EXHAUSTIVE_UP_TO devices;
        beyond, the prefixes (2, 3, ... devices) of the devices ordered by speed, by energy per step and
        by bandwidth, and every device alone; and each of these with its members in lower power modes
        (`_in_power_modes`). Cached per available set."""
        cached = self._candidates.get(available)
        if cached is not None:
            return cached
        devices = self.slots_of(available)
        if len(devices) <= EXHAUSTIVE_UP_TO:
            groups = [group for size in range(1, len(devices) + 1) for group in combinations(devices, size)]
        else:
            ordered = [[i for i in order if available >> i & 1] for order in self._orders]
            groups = [(i,) for i in devices] + [tuple(order[:size]) for order in ordered
                                                for size in range(2, len(devices) + 1)]
        seen: set[Plan] = set()
        out = []
        for group in groups:
            selected = sum(1 << i for i in group)
            for kind in (("local",) if len(group) == 1 else PLAN_KINDS[1:]):
                resolved = self.resolve(kind, selected)
                if resolved.plan not in seen:
                    seen.add(resolved.plan)
                    out.append(resolved)
            hybrid = self.hybrid(group) if len(group) > 1 else None
            if hybrid is not None and hybrid.plan not in seen:
                seen.add(hybrid.plan)
                out.append(hybrid)
        if self.power_modes:
            for resolved in list(out):
                for plan in power_mode_variants(resolved.plan, self.scenario):
                    if plan not in seen and not plan_problems(plan, self.scenario):
                        seen.add(plan)
                        out.append(self.priced(plan))
        self._candidates[available] = out
        return out

