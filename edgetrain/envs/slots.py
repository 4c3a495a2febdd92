"""An episode's devices in their action slots, and what depends only on them (cached per fleet):
the static observation features, the speed order, which kinds can run on which available sets, and
the plan every (kind, devices) choice resolves to."""

from __future__ import annotations

import copy
from itertools import combinations
from typing import Optional

import numpy as np

from edgetrain.core.catalog import get_profile
from edgetrain.core.config import Scenario
from edgetrain.core.feasibility import plan_problems
from edgetrain.core.memory import device_memory_mb
from edgetrain.core.plans import FALLBACK_KINDS, PLAN_KINDS, Plan
from edgetrain.envs.actions import MAX_DEVICES
from edgetrain.envs.costmodel import CostModel
from edgetrain.envs.state import ResolvedPlan

DEVICE_FEATURES = 10


class SlotFleet:
    """The devices of `scenario`, slot i holding its i-th device."""

    def __init__(self, scenario: Scenario, cost: CostModel):
        self.scenario = scenario
        self.cost = cost
        self.names: tuple[str, ...] = tuple(scenario.device_names)
        self.n = len(self.names)
        self.powers = [get_profile(d.profile) for d in scenario.devices]
        self.battery_j: list[Optional[float]] = [d.battery_wh * 3600 if d.battery_wh else None
                                                 for d in scenario.devices]
        local_times = [cost.predict(Plan("local", (name,))).step_time_s for name in self.names]
        self.slowest_local_s = max(local_times)
        self.speed_order: list[int] = sorted(range(self.n), key=lambda i: local_times[i])  # fastest first
        self._rank = {slot: rank for rank, slot in enumerate(self.speed_order)}
        self.static = np.zeros((MAX_DEVICES, DEVICE_FEATURES), dtype=np.float32)
        for i, device in enumerate(scenario.devices):
            self.static[i, 0] = 1.0
            self.static[i, 3] = min(local_times) / local_times[i]
            self.static[i, 4] = min(device.bandwidth_mbps / 100.0, 1.0)
            self.static[i, 5] = min(device_memory_mb(scenario, device.name) / 8192.0, 1.0)
            self.static[i, 6] = min(self.powers[i].idle_power_w.value / 30.0, 1.0)
            self.static[i, 7] = min(self.powers[i].active_power_w.value / 30.0, 1.0)
        self._resolved: dict[tuple[int, int], ResolvedPlan] = {}
        self._kinds: dict[int, np.ndarray] = {}

    def for_episode(self, scenario: Scenario) -> "SlotFleet":
        """The same devices in the same slots with the episode's availability (fleet randomisation
        varies it); everything cached is shared, as it depends on the devices alone."""
        episode = copy.copy(self)
        episode.scenario = scenario
        return episode

    def slots_of(self, mask: int) -> list[int]:
        return [i for i in range(self.n) if mask >> i & 1]

    def feasible_kinds(self, available: int) -> np.ndarray:
        """Per kind: whether some subset of the available devices can run it (local always can)."""
        kinds = self._kinds.get(available)
        if kinds is None:
            devices = self.slots_of(available)
            kinds = np.zeros(len(PLAN_KINDS), dtype=bool)
            for k, kind in enumerate(PLAN_KINDS):
                sizes = [1] if kind == "local" else range(2, len(devices) + 1)
                kinds[k] = any(not plan_problems(Plan(kind, tuple(self.names[i] for i in group)), self.scenario)
                               for size in sizes for group in combinations(devices, size))
            if not kinds.any():
                kinds[0] = True
            self._kinds[available] = kinds
        return kinds

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

    def _with_prediction(self, kind_and_slots: tuple[str, tuple[int, ...]]) -> ResolvedPlan:
        kind, slots = kind_and_slots
        plan = Plan(kind, tuple(self.names[i] for i in slots))
        prediction = self.cost.predict(plan)
        return ResolvedPlan(plan, slots, prediction, tuple(prediction.energy_j[self.names[i]] for i in slots),
                            sum(self.powers[i].idle_power_w.value for i in slots))

    def candidates(self, available: int) -> list[ResolvedPlan]:
        """Every distinct plan the env can run on the available devices, as actions resolve them."""
        devices = self.slots_of(available)
        seen: set[Plan] = set()
        out = []
        for size in range(1, len(devices) + 1):
            for group in combinations(devices, size):
                selected = sum(1 << i for i in group)
                for kind in (("local",) if size == 1 else PLAN_KINDS[1:]):
                    resolved = self.resolve(kind, selected)
                    if resolved.plan not in seen:
                        seen.add(resolved.plan)
                        out.append(resolved)
        return out
