"""The planner: for a set of devices, the cheapest plan of each family (one device, each uniform kind,
hybrid), priced by the cost model in Zeus cost per sample.

Uniform kinds are tried on every prefix of the devices ordered fastest first (adding a slower device to
dp or tp can only help up to a point). Hybrid plans are chosen the way Asteroid (MobiCom'24) and Alpa
(OSDI'22) do, by dynamic programming: with the devices ordered fastest first (so that a stage's group
holds devices of similar speed), best[i][l] is the smallest bottleneck stage time of a pipeline that
puts layers [0, l) on devices [0, i), each stage a contiguous group of devices and a contiguous run of
layers, data-parallel within its group; a stage whose members lack the memory is not allowed. That is
O(devices^2 x layers^2) cheap stage evaluations (each from tables made once per call). Every prefix of
devices gives a pipeline; each is then priced whole by the cost model, with a few micro-batch counts,
and the cheapest is the hybrid family's plan.

The stage times in the search are estimates (a stage's activations come from the device before it in
the order, not from the real previous group); the final choice is made on the cost model's full
prediction of each candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from edgetrain.core.config import Scenario
from edgetrain.core.memory import device_memory_mb, hybrid_stage_mb
from edgetrain.core.objective import EnergyTimeCost
from edgetrain.core.plans import HYBRID, Plan
from edgetrain.envs.costmodel import FLOAT_BYTES, CostModel, Prediction

SEARCH_MICROBATCHES = 4
"""Micro-batches assumed while searching partitions (a stage's time scales with its rows, so the best
partition hardly depends on it); the candidates are then priced with several counts."""


@dataclass(frozen=True)
class PlannedFamily:
    family: str
    plan: Plan
    prediction: Prediction
    cost_per_sample: float


class Planner:
    def __init__(self, model: CostModel, cost: Optional[EnergyTimeCost] = None):
        self.model = model
        self.cost = cost or EnergyTimeCost.of(model.scenario)
        self.cfg = model.cfg

    def price(self, plan: Plan) -> tuple[Prediction, float]:
        prediction = self.model.predict(plan)
        per_sample = self.cost.zeus_cost(prediction.total_energy_j, prediction.step_time_s) / self.cfg.batch_size
        return prediction, per_sample if prediction.fits else math.inf

    def fastest_first(self, devices: list[str]) -> list[str]:
        rows, seq = self.cfg.batch_size, self.cfg.seq_len
        return sorted(devices, key=lambda d: sum(self.model.devices[d].time("block", rows, seq)))

    def best_of_each_family(self, devices: list[str], power_modes: bool = False) -> dict[str, PlannedFamily]:
        """The cheapest feasible plan of every family on (a subset of) these devices; a family with no
        feasible plan is left out. With `power_modes`, each plan is also weighed with its members in their
        lower power modes (power_mode_variants)."""
        ordered = self.fastest_first(devices)
        candidates: dict[str, list[Plan]] = {"local": [Plan("local", (d,)) for d in ordered]}
        for kind in ("dp", "pp", "tp", "sp"):
            candidates[kind] = [Plan(kind, tuple(ordered[:k])) for k in range(2, len(ordered) + 1)]
        candidates[HYBRID] = self.hybrid_candidates(ordered)
        if power_modes:
            scenario = self.model.scenario
            candidates = {family: plans + [v for plan in plans for v in power_mode_variants(plan, scenario)]
                          for family, plans in candidates.items()}
        best = {family: self._cheapest(family, plans) for family, plans in candidates.items()}
        return {family: found for family, found in best.items() if found is not None}

    def best_hybrid(self, devices: list[str]) -> Optional[PlannedFamily]:
        """The cheapest feasible hybrid plan over exactly these devices (all of them), or None."""
        ordered = self.fastest_first(devices)
        return self._cheapest(HYBRID, [plan for plan in self.hybrid_candidates(ordered)
                                       if plan.degree == len(ordered)])

    def _cheapest(self, family: str, plans: list[Plan]) -> Optional[PlannedFamily]:
        priced = [PlannedFamily(family, plan, *self.price(plan)) for plan in plans]
        feasible = [found for found in priced if found.cost_per_sample < math.inf]
        return min(feasible, key=lambda found: found.cost_per_sample) if feasible else None

    # --- hybrid search ---------------------------------------------------------------------------------
    def hybrid_candidates(self, ordered: list[str]) -> list[Plan]:
        """One pipeline per prefix of `ordered` (the dynamic programme's best partition of that prefix,
        at least two stages), each with a few micro-batch counts."""
        plans = []
        for _, groups, blocks in self.best_partitions(ordered):
            for micro in self._microbatch_choices(len(groups), max(len(g) for g in groups)):
                plans.append(Plan(HYBRID, tuple(d for g in groups for d in g), tuple(len(g) for g in groups),
                                  tuple(blocks), micro))
        return plans

    def best_partitions(self, ordered: list[str]) -> list[tuple[float, list[list[str]], list[int]]]:
        """For each prefix of `ordered` of at least two devices: (bottleneck stage seconds, device groups,
        blocks per stage) of its best pipeline of at least two stages; prefixes with none are left out."""
        n, layers = len(ordered), self.cfg.layers
        if n < 2 or layers < 2:
            return []
        stage = self.stage_time_table(ordered)
        inf = math.inf
        # best[i][l]: bottleneck of the best pipeline over devices [0, i) and layers [0, l); cut[i][l]:
        # where its last stage starts (device, layer). best2/cut2: the same with at least two stages.
        best = [[inf] * (layers + 1) for _ in range(n + 1)]
        cut: list[list[Optional[tuple[int, int]]]] = [[None] * (layers + 1) for _ in range(n + 1)]
        best2 = [[inf] * (layers + 1) for _ in range(n + 1)]
        cut2: list[list[Optional[tuple[int, int]]]] = [[None] * (layers + 1) for _ in range(n + 1)]
        for i in range(1, n + 1):
            for l in range(1, layers + 1):
                best[i][l], cut[i][l] = stage(0, i, 0, l), (0, 0)
                for j in range(1, i):
                    for k in range(1, l):
                        if best[j][k] == inf:
                            continue
                        bottleneck = max(best[j][k], stage(j, i, k, l))
                        if bottleneck < best2[i][l]:
                            best2[i][l], cut2[i][l] = bottleneck, (j, k)
                if best2[i][l] < best[i][l]:
                    best[i][l], cut[i][l] = best2[i][l], cut2[i][l]
        found = []
        for i in range(2, n + 1):
            if best2[i][layers] == inf:
                continue
            groups, blocks = [], []
            end_i, end_l, (j, k) = i, layers, cut2[i][layers]
            while True:
                groups.append(ordered[j:end_i])
                blocks.append(end_l - k)
                if j == 0:
                    break
                end_i, end_l = j, k
                j, k = cut[end_i][end_l]
            found.append((best2[i][layers], groups[::-1], blocks[::-1]))
        return found

    def _microbatch_choices(self, stages: int, widest: int) -> list[int]:
        rows = self.cfg.batch_size
        choices = {m for m in (stages, 2 * stages, 4 * stages) if rows // m >= widest}
        return sorted(choices) or [max(1, rows // widest)]

    def stage_time_table(self, ordered: list[str]):
        """stage(j, i, k, l): estimated seconds per micro-batch of a stage on devices ordered[j:i] with
        layers [k, l): its slowest member on its rows, plus receiving its activations (from device j-1,
        standing in for the previous stage) and sending their gradients back; inf when a member lacks
        the memory."""
        cfg, model = self.cfg, self.model
        n, seq = len(ordered), cfg.seq_len
        micro_rows = cfg.batch_size / SEARCH_MICROBATCHES
        block, embed, head, comm, memory, widest_rows = {}, {}, {}, {}, {}, {}
        for j in range(n):
            for i in range(j + 1, n + 1):
                group = ordered[j:i]
                rows = micro_rows / len(group)
                per = [model.devices[d] for d in group]
                block[j, i] = max(sum(d.time("block", rows, seq)) for d in per)
                embed[j, i] = max(sum(d.time("embeddings", rows, seq)) for d in per)
                head[j, i] = max(sum(d.time("head", rows, seq)) for d in per)
                nbytes = rows * seq * cfg.d_model * FLOAT_BYTES
                comm[j, i] = 0.0 if j == 0 else max(
                    model.transfer_s(ordered[j - 1], d, nbytes) + model.transfer_s(d, ordered[j - 1], nbytes)
                    for d in group)
                memory[j, i] = min(device_memory_mb(model.scenario, d) for d in group)
                widest_rows[j, i] = math.ceil(cfg.batch_size / len(group))
        layers = cfg.layers
        # Depends on the group's size, not its devices: computed once per shape, not per (j, i, k, l).
        need_mb = lru_cache(maxsize=None)(lambda *shape: hybrid_stage_mb(cfg, *shape))

        def stage(j: int, i: int, k: int, l: int) -> float:
            first, last = k == 0, l == layers
            if need_mb(l - k, first, last, widest_rows[j, i]) > memory[j, i]:
                return math.inf
            return ((l - k) * block[j, i] + (embed[j, i] if first else 0.0) + (head[j, i] if last else 0.0)
                    + comm[j, i])
        return stage


def power_mode_variants(plan: Plan, scenario: Scenario) -> list[Plan]:
    """`plan` with one member in one of its lower power modes, for every member and mode; and with
    every member that has modes in its lowest-power one. Not every combination: with m modes on each
    of k members that would be (m+1)^k plans; these are the ones a rule would try (slow down the one
    device that drains or draws most, or all of them)."""
    lowered = []
    lowest = {}
    for device in plan.devices:
        modes = scenario.device(device).power_modes
        lowered += [plan.in_modes({device: mode.name}) for mode in modes]
        if modes:
            lowest[device] = min(modes, key=lambda m: m.power).name
    if len(lowest) > 1:
        lowered.append(plan.in_modes(lowest))
    return lowered
