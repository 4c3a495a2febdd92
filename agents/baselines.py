"""Baselines a learned scheduler must beat, as policies of EdgeTrain-v0: `act(env, obs) -> action`.

- random: a random valid plan (from the action masks).
- all_dp: every available device, data parallel.
- fastest_single: the fastest available device alone.
- greedy: at every decision the plan with the lowest predicted Zeus cost per sample on the devices
  available now, from the cost model (what a static auto-parallel planner does).
- oracle: clairvoyant, for evaluation only: it knows the whole availability trace and, at every
  decision, picks the plan that costs least per sample if kept until the job ends or one of its devices
  leaves (switch, lost work and recovery included). Judging a plan over its whole lifetime, not one
  interval, lets it pay a switch that pays back later. It is clairvoyant, not provably optimal.
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable

import numpy as np

from edgetrain.plans import PLAN_KINDS
from envs.edgetrain_env import DETECTION_S, MAX_DEVICES, EdgeTrainEnv

Policy = Callable[[EdgeTrainEnv, np.ndarray], np.ndarray]


def action_for(kind_index: int, members) -> np.ndarray:
    action = np.zeros(1 + MAX_DEVICES, dtype=np.int64)
    action[0] = kind_index
    for i in members:
        action[1 + i] = 1
    return action


def _available(env: EdgeTrainEnv) -> list[int]:
    mask = env._available_mask()
    return [i for i in range(env.n) if mask >> i & 1]


def _candidates(env: EdgeTrainEnv) -> list[tuple[int, int]]:
    """(kind index, device bitmask) of every plan on the available devices, as the env resolves them."""
    devices = _available(env)
    seen, out = set(), []
    for size in range(1, len(devices) + 1):
        for group in combinations(devices, size):
            selected = sum(1 << i for i in group)
            for k in (range(1) if size == 1 else range(1, len(PLAN_KINDS))):
                plan = env.resolve(k, selected)
                if plan not in seen:
                    seen.add(plan)
                    out.append((PLAN_KINDS.index(plan[0]), sum(1 << i for i in plan[1])))
    return out


def make_random(seed: int) -> Policy:
    rng = np.random.default_rng(seed)

    def act(env: EdgeTrainEnv, obs: np.ndarray) -> np.ndarray:
        mask = env.action_masks()
        kinds = np.flatnonzero(mask[: len(PLAN_KINDS)])
        bits = [rng.choice(np.flatnonzero(mask[len(PLAN_KINDS) + 2 * i: len(PLAN_KINDS) + 2 * i + 2]))
                for i in range(MAX_DEVICES)]
        return np.array([rng.choice(kinds)] + bits)

    return act


def all_dp(env: EdgeTrainEnv, obs: np.ndarray) -> np.ndarray:
    return action_for(PLAN_KINDS.index("dp"), _available(env))


def fastest_single(env: EdgeTrainEnv, obs: np.ndarray) -> np.ndarray:
    fastest = next(i for i in env.speed_order if i in _available(env))
    return action_for(0, [fastest])


def predicted_cost_per_sample(env: EdgeTrainEnv, candidate: tuple[int, int]) -> float:
    prediction = env._resolved_plan(*candidate)[1]
    per_step = env.eta * prediction.total_energy_j + (1 - env.eta) * env.max_power * prediction.step_time_s
    return per_step / env.batch


def make_greedy(seed: int = 0) -> Policy:
    """The cheapest predicted plan depends only on the fleet and which of its devices are available:
    remembered per (fleet, available set)."""
    best: dict[tuple, tuple[int, int]] = {}

    def act(env: EdgeTrainEnv, obs: np.ndarray) -> np.ndarray:
        key = (tuple(env.names), env._available_mask())
        if key not in best:
            best[key] = min(_candidates(env), key=lambda c: predicted_cost_per_sample(env, c))
        kind, selected = best[key]
        return action_for(kind, [i for i in range(env.n) if selected >> i & 1])

    return act


def lifetime_cost_per_sample(env: EdgeTrainEnv, candidate: tuple[int, int]) -> float:
    """Zeus cost per sample of keeping this plan from now until the job is done or the plan fails, on
    the episode's true availability trace, noise-free."""
    plan, prediction, step_energies, idle_w = env._resolved_plan(*candidate)
    step_time, step_energy = prediction.step_time_s, sum(step_energies)
    switch = env.switch_s if plan != env.plan else 0.0
    steps_needed = -(-(env.target - env.samples) // env.batch)
    failure_at = min(env._next_offline(i, env.t) for i in plan[1])
    if failure_at - env.t - switch >= steps_needed * step_time:
        steps, kept, duration = steps_needed, steps_needed, switch + steps_needed * step_time
    else:
        steps = int(max(failure_at - env.t - switch, 0.0) / step_time)
        kept = steps // env.checkpoint_every * env.checkpoint_every
        duration = failure_at - env.t + DETECTION_S
    energy = steps * step_energy + (duration - steps * step_time) * idle_w
    cost = env.eta * energy + (1 - env.eta) * env.max_power * duration
    return cost / (kept * env.batch) if kept else float("inf")


def oracle(env: EdgeTrainEnv, obs: np.ndarray) -> np.ndarray:
    kind, selected = min(_candidates(env), key=lambda c: lifetime_cost_per_sample(env, c))
    return action_for(kind, [i for i in range(env.n) if selected >> i & 1])


# name -> factory(seed) -> policy; one fresh policy per evaluation, so no state leaks between them.
BASELINES: dict[str, Callable[[int], Policy]] = {
    "random": make_random,
    "all_dp": lambda seed: all_dp,
    "fastest_single": lambda seed: fastest_single,
    "greedy": make_greedy,
    "oracle": lambda seed: oracle,
}
