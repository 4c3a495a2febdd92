"""Baselines a learned scheduler must beat, as policies of EdgeTrain-v0: `act(env, obs) -> action`.
They see the env only through its planning API (available devices, candidate plans, predictions)
and price plans with the env's one objective (`env.objective.zeus_cost`).

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

from typing import Callable

import numpy as np

from edgetrain.envs.actions import action_for, random_valid_action
from edgetrain.envs.edgetrain_env import EdgeTrainEnv
from edgetrain.envs.state import ResolvedPlan

Policy = Callable[[EdgeTrainEnv, np.ndarray], np.ndarray]


def make_random(seed: int) -> Policy:
    rng = np.random.default_rng(seed)

    def act(env: EdgeTrainEnv, obs: np.ndarray) -> np.ndarray:
        return random_valid_action(env.action_masks(), rng)

    return act


# With no device available (the job has stalled: the env trains nothing whatever the action) any action will
# do; the policies below return this one instead of searching an empty set.
NO_DEVICE = action_for("local", [])


def all_dp(env: EdgeTrainEnv, obs: np.ndarray) -> np.ndarray:
    return action_for("dp", env.fleet.slots_of(env.state.world.available))


def fastest_single(env: EdgeTrainEnv, obs: np.ndarray) -> np.ndarray:
    available = env.state.world.available
    fastest = next((i for i in env.fleet.speed_order if available >> i & 1), None)
    return NO_DEVICE if fastest is None else action_for("local", [fastest])


def predicted_cost_per_sample(env: EdgeTrainEnv, resolved: ResolvedPlan) -> float:
    """Zeus cost per sample of one step of the plan, as the cost model predicts it."""
    prediction = resolved.prediction
    return env.objective.zeus_cost(prediction.total_energy_j, prediction.step_time_s) / env.batch


def make_greedy(seed: int = 0) -> Policy:
    """The cheapest predicted plan depends only on the fleet and which of its devices are available:
    remembered per (fleet, available set)."""
    best: dict[tuple, ResolvedPlan] = {}

    def act(env: EdgeTrainEnv, obs: np.ndarray) -> np.ndarray:
        key = (env.names, env.state.world.available)
        if not key[1]:
            return NO_DEVICE
        if key not in best:
            best[key] = min(env.candidate_plans(), key=lambda c: predicted_cost_per_sample(env, c))
        return env.action_for(best[key])

    return act


def lifetime_cost_per_sample(env: EdgeTrainEnv, resolved: ResolvedPlan) -> float:
    """Zeus cost per sample of keeping this plan from now until the job is done or the plan fails, on
    the episode's true availability trace, noise-free."""
    steps_needed = -(-(env.target - env.state.samples) // env.batch)
    outcome = env.predicted_interval(resolved, steps=steps_needed)
    cost = env.objective.zeus_cost(outcome["energy_j"], outcome["duration_s"])
    return cost / outcome["samples"] if outcome["samples"] else float("inf")


def oracle(env: EdgeTrainEnv, obs: np.ndarray) -> np.ndarray:
    if not env.state.world.available:
        return NO_DEVICE
    return env.action_for(min(env.candidate_plans(), key=lambda c: lifetime_cost_per_sample(env, c)))


# name -> factory(seed) -> policy; one fresh policy per evaluation, so no state leaks between them.
BASELINES: dict[str, Callable[[int], Policy]] = {
    "random": make_random,
    "all_dp": lambda seed: all_dp,
    "fastest_single": lambda seed: fastest_single,
    "greedy": make_greedy,
    "oracle": lambda seed: oracle,
}
