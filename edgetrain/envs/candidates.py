"""The plans EdgeTrain-v0 offers at a decision, and what the policy sees of each.

The policy does not compose a plan from device bits: at every decision it chooses one of up to
`MAX_CANDIDATES` plans, each described by what it would cost *this job* on *these devices* (the cost
model's predictions, relative to the best offer), what risks it runs (a member leaving within the
interval, given its availability process and how long it has been up; batteries) and whether it
means a switch. What it learns on one fleet and model therefore carries over to another: the features
are physical and normalised, not slot positions.

The offer, deduplicated and sorted by predicted Zeus cost per sample (cheapest first):
- the cheapest plan on the available devices (what greedy runs),
- the cheapest plan of each kind (hybrid plans from the planner), and of each device count,
- for each member of the cheapest plan, the cheapest plan without that device (where to go when it is
  about to leave or its battery is low),
- keeping the current plan, when all its devices are still there (no switch),
then the next cheapest plans up to the limit. Every plan comes from `SlotFleet.candidates`: in the
simulator, that includes plans with members in lower power modes, where the scenario gives devices modes.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from edgetrain.core.availability import leave_probability
from edgetrain.core.memory import device_memory_mb
from edgetrain.core.objective import EnergyTimeCost
from edgetrain.core.plans import ALL_KINDS
from edgetrain.envs.dynamics import JobRules
from edgetrain.envs.slots import SlotFleet
from edgetrain.envs.state import ResolvedPlan, World

MAX_CANDIDATES = 16
CANDIDATE_FEATURES = 20
JOB_FEATURES = 6
LOOKAHEAD_INTERVALS = 10
"""The second leave-risk feature looks this many intervals ahead."""


class CandidateOffer:
    """Builds the offer and its features for one fleet; what depends only on the fleet and the plan is
    computed once per plan."""

    def __init__(self, fleet: SlotFleet, rules: JobRules, objective: EnergyTimeCost):
        self.fleet = fleet
        self.rules = rules
        self.objective = objective
        self._offers: dict[int, list[ResolvedPlan]] = {}
        self._static: dict[object, np.ndarray] = {}
        self._kept: dict[tuple, list[ResolvedPlan]] = {}
        self._rows: dict[int, dict] = {}
        """By the id of an offer list: the row of each plan in it."""
        self._fixed: dict[int, tuple] = {}
        """By the id of an offer list: every list `offer` returns is kept in `_offers` or `_kept`."""
        self._memory_mb = [device_memory_mb(fleet.scenario, name) for name in fleet.names]

    # --- which plans -------------------------------------------------------------------------------------
    def cost_per_sample(self, resolved: ResolvedPlan) -> float:
        prediction = resolved.prediction
        return self.objective.zeus_cost(prediction.total_energy_j, prediction.step_time_s) / self.rules.batch_size

    def offer(self, available: int, current: Optional[ResolvedPlan]) -> list[ResolvedPlan]:
        """The plans offered on the available devices (cheapest first); `current` is among them when all
        its devices are available."""
        base = self._offers.get(available)
        if base is None:
            base = self._offers[available] = self._build(available)
            self._rows[id(base)] = {p.plan: k for k, p in enumerate(base)}
        if current is None or current.plan in self._rows[id(base)] \
                or any(not available >> i & 1 for i in current.slots):
            return base
        key = (available, current.plan)
        kept = self._kept.get(key)
        if kept is None:
            kept = self._kept[key] = sorted(base[: MAX_CANDIDATES - 1] + [current], key=self.cost_per_sample)
            self._rows[id(kept)] = {p.plan: k for k, p in enumerate(kept)}
        return kept

    def _build(self, available: int) -> list[ResolvedPlan]:
        pool = sorted(self.fleet.candidates(available), key=self.cost_per_sample)
        best = pool[0]
        wanted = [best]
        for kind in ALL_KINDS:
            wanted += [next((p for p in pool if p.plan.kind == kind), None)]
        for size in range(1, len(self.fleet.slots_of(available)) + 1):
            wanted += [next((p for p in pool if len(p.slots) == size), None)]
        for slot in best.slots:
            wanted += [next((p for p in pool if slot not in p.slots), None)]
        offered, seen = [], set()
        for plan in [p for p in wanted if p is not None] + pool:
            if plan.plan not in seen:
                seen.add(plan.plan)
                offered.append(plan)
        # Room for keeping the current plan: the offer holds one plan less than the limit.
        return sorted(offered[: MAX_CANDIDATES - 1], key=self.cost_per_sample)

    # --- what the policy sees ------------------------------------------------------------------------------
    def _static_features(self, resolved: ResolvedPlan) -> np.ndarray:
        """Features that depend on the plan alone: its kind, size, communication share, memory headroom,
        and the largest battery share one interval of it drains from a member (0 with no battery member)."""
        cached = self._static.get(resolved.plan)
        if cached is None:
            prediction = resolved.prediction
            names = self.fleet.names
            comm_s = max((prediction.bytes_sent[names[i]] + prediction.bytes_recv[names[i]]) * 8
                         / (self.fleet.scenario.devices[i].bandwidth_mbps * 1e6) for i in resolved.slots)
            headroom = min(1.0 - prediction.memory_mb[names[i]] / self._memory_mb[i] for i in resolved.slots)
            drain = max((energy * self.rules.decision_steps / self.fleet.battery_j[i]
                         for i, energy in zip(resolved.slots, resolved.step_energies_j)
                         if self.fleet.battery_j[i] is not None), default=0.0)
            cached = np.array([min(comm_s / prediction.step_time_s, 1.0), min(max(headroom, 0.0), 1.0),
                               min(drain * 10.0, 1.0), len(resolved.slots) / self.fleet.n,
                               ALL_KINDS.index(resolved.plan.kind)], dtype=np.float64)
            self._static[resolved.plan] = cached
        return cached

    def features(self, offered: list[ResolvedPlan], world: World, current: Optional[ResolvedPlan],
                 hour_of_day: float, remaining_samples: float) -> np.ndarray:
        """(MAX_CANDIDATES, CANDIDATE_FEATURES), rows beyond the offer all zero. Columns:
        0 offered; 1 cheapest cost / its cost (1 for the cheapest); 2 least energy / its energy per sample;
        3 least time / its time per sample; 4 communication share of a step; 5 memory headroom of its
        tightest member; 6 chance a member leaves within this interval; 7 within the next 10;
        8 lowest battery charge of its members (1 on mains power); 9 battery share one interval drains
        from its hungriest member (x10, clipped); 10 it is the current plan (no switch); 11 its switch
        time as a share of the interval (0 for the current plan); 12 devices / the fleet's devices;
        13-18 kind, one-hot (local, dp, pp, tp, sp, hybrid); 19 whether switching to it pays back (see
        `_payback`). Everything but the risks (6-8) and the payback depends only on the offer and the current
        plan, and is computed once for each."""
        if not offered:
            return np.zeros((MAX_CANDIDATES, CANDIDATE_FEATURES), dtype=np.float32)
        fixed = self._fixed.get(id(offered))
        if fixed is None:
            fixed = self._fixed[id(offered)] = self._fixed_features(offered)
        rows, switch_share, members, batteries, longest_interval_s, costs, sample_times = fixed
        out = rows.copy()
        n = len(offered)
        out[:n, 11] = switch_share
        row = None if current is None else self._rows[id(offered)].get(current.plan)
        if row is not None:
            out[row, 10], out[row, 11] = 1.0, 0.0
        if self._coming_and_going:
            soon, later = self._leave_chances(world, hour_of_day, longest_interval_s)
            stays = np.log1p(-np.minimum(np.array([soon, later]), 1.0 - 1e-12))  # (2, devices)
            out[:n, 6:8] = 1.0 - np.exp(members @ stays.T)
        if batteries.any():
            charge = np.asarray(world.battery)
            out[:n, 8] = np.where(batteries, charge[None, :], 1.0).min(axis=1)
        out[:n, 19] = self._payback(costs, sample_times, out[:n, 7], row, remaining_samples, longest_interval_s)
        return out

    def _payback(self, costs: np.ndarray, sample_times: np.ndarray, leave_later: np.ndarray, current_row,
                 remaining_samples: float, interval_s: float) -> np.ndarray:
        """Per offer, x / (1 + x) with x = what switching to it saves over the running plan (its relative
        cost gain, times the seconds it is expected to run: until a member leaves, from the 10-interval
        leave chance as if memoryless, or the job ends) / the switch time. 0.5 (x = 1, break-even) for the
        running plan itself, 0 for an offer no cheaper than it, 1 for every offer when no plan runs (a
        switch is forced). Why: the cost ratios (1-3) say which offer is cheapest, and the risks (6-7) who
        may leave, but whether a cheaper offer is worth an 8 s switch depends on their product, which an
        MLP on a few thousand decisions learns poorly, and a policy that learned it on one fleet's figures
        switched wrongly on another's (measured: imitation alone, held-out lab-sessions 1.027x greedy
        without this feature, 1.004x with it)."""
        if current_row is None:
            return np.ones(len(costs))
        gain = np.maximum(1.0 - costs / costs[current_row], 0.0)
        hazard_per_s = -np.log1p(-np.minimum(leave_later.astype(np.float64), 1.0 - 1e-12)) / (LOOKAHEAD_INTERVALS * interval_s)
        with np.errstate(divide="ignore"):
            stay_s = np.minimum(1.0 / hazard_per_s, max(remaining_samples, 0.0) * sample_times)
        x = np.minimum(gain * stay_s / max(self.rules.switch_s, 1e-9), 1e12)  # a free switch pays back at once
        paid = x / (1.0 + x)
        paid[current_row] = 0.5
        return paid

    def _fixed_features(self, offered: list[ResolvedPlan]):
        out = np.zeros((MAX_CANDIDATES, CANDIDATE_FEATURES), dtype=np.float32)
        costs = np.array([self.cost_per_sample(p) for p in offered])
        energies = np.array([p.prediction.total_energy_j for p in offered])
        times = np.array([p.prediction.step_time_s for p in offered])
        interval_s = self.rules.switch_s + self.rules.decision_steps * times
        members = np.zeros((len(offered), self.fleet.n))
        for row, plan in enumerate(offered):
            comm, headroom, drain, size, kind = self._static_features(plan)
            out[row, :13] = (1.0, costs.min() / costs[row], energies.min() / energies[row], times.min() / times[row],
                             comm, headroom, 0.0, 0.0, 1.0, drain, 0.0, 0.0, size)
            out[row, 13 + int(kind)] = 1.0
            members[row, list(plan.slots)] = 1.0
        on_battery = np.array([capacity is not None for capacity in self.fleet.battery_j])
        batteries = (members > 0) & on_battery[None, :]
        return (out, self.rules.switch_s / interval_s, members, batteries, float(interval_s.max()), costs,
                times / self.rules.batch_size)

    @property
    def _coming_and_going(self) -> bool:
        """Some device of this episode's fleet may leave (else every leave chance is 0)."""
        return any(d.availability.kind != "always" for d in self.fleet.scenario.devices)

    def _leave_chances(self, world: World, hour_of_day: float, interval_s: float) -> tuple[list, list]:
        """Per slot: the chance that device leaves within one interval and within LOOKAHEAD_INTERVALS (its
        scenario's availability, its age; 1 for a device not there)."""
        soon, later = [], []
        for i, device in enumerate(self.fleet.scenario.devices):
            if not world.available >> i & 1:
                soon.append(1.0)
                later.append(1.0)
            elif device.availability.kind == "always":
                soon.append(0.0)
                later.append(0.0)
            else:
                age = world.up_for_s[i]
                soon.append(leave_probability(device.availability, age, interval_s, hour_of_day))
                later.append(leave_probability(device.availability, age, LOOKAHEAD_INTERVALS * interval_s,
                                               hour_of_day))
        return soon, later


def job_features(progress: float, hour_of_day: float, available: int, fleet_size: int, failed: bool,
                 has_plan: bool) -> np.ndarray:
    """Progress (samples / target), time of day (sin, cos, scaled to [0, 1]), share of the fleet
    available, the last interval failed, a plan is running."""
    angle = 2.0 * math.pi * hour_of_day / 24.0
    return np.array([min(progress, 1.0), 0.5 + 0.5 * math.sin(angle), 0.5 + 0.5 * math.cos(angle),
                     bin(available).count("1") / fleet_size, float(failed), float(has_plan)], dtype=np.float32)
