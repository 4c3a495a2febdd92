"""Steps per second of EdgeTrain-v0 on the sim backend, on one core, with valid random actions drawn
from the action masks (the shared `random_valid_action`, whose cost is included). Target: at least
20,000. Prints JSON.

Two measurements, each for --seconds, with the same target:
- the env itself (the top-level figures): `gym.make(...).unwrapped`, every action drawn by
  `random_valid_action(env.action_masks(), rng)`, so the full mask is computed every step;
- `training_path`: the env as MaskablePPO is handed it from `gym.make("EdgeTrain-v0", vary_fleet=True)`,
  not unwrapped (Gymnasium's TimeLimit, OrderEnforcing and PassiveEnvChecker wrappers), its mask taken
  the way SB3's VecEnvs take it, `env.get_wrapper_attr("action_masks")()`, every step. (`edgetrain train`
  itself builds its envs with SB3's make_vec_env(EdgeTrainEnv): a Monitor wrapper only.)

    .venv/bin/python benchmarks/env_throughput.py [--seconds 10] [--calibration FILE] [--scenario NAME]
"""

import argparse
import json
import os
import time

import gymnasium as gym
import numpy as np

import edgetrain.envs  # noqa: F401  (registers EdgeTrain-v0)
from edgetrain.envs.actions import random_valid_action

TARGET = 20_000
SECONDS = 10.0  # per measurement: two of them and the start-up make about 20 s


def wrappers(env: gym.Env) -> list[str]:
    """The wrapper classes around the env, outermost first."""
    names = []
    while isinstance(env, gym.Wrapper):
        names.append(type(env).__name__)
        env = env.env
    return names


def run(env: gym.Env, masks, seconds: float) -> dict:
    """Random valid actions from `masks()` (called before every step) for `seconds`."""
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    steps = episodes = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(1000):
            _, _, terminated, truncated, _ = env.step(random_valid_action(masks(), rng))
            steps += 1
            if terminated or truncated:
                episodes += 1
                env.reset()
    elapsed = time.perf_counter() - start
    rate = steps / elapsed
    return {"steps": steps, "episodes": episodes, "seconds": elapsed, "steps_per_s": rate,
            "target_steps_per_s": TARGET, "target_met": rate >= TARGET}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=SECONDS,
                        help=f"seconds per measurement (two measurements; default {SECONDS:g})")
    parser.add_argument("--calibration", "--profile", default=None)
    parser.add_argument("--scenario", default=None)
    args = parser.parse_args()
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    env = gym.make("EdgeTrain-v0", scenario=args.scenario, calibration=args.calibration).unwrapped
    report = {"env": "EdgeTrain-v0", "backend": "sim", "scenario": env.scenario.name,
              "env_object": "gym.make(...).unwrapped (no wrappers), vary_fleet=False",
              "actions": "random_valid_action from the full mask every step",
              "masks": "env.action_masks() on the unwrapped env, called before every step"}
    report.update(run(env, env.action_masks, args.seconds))
    made = gym.make("EdgeTrain-v0", scenario=args.scenario, calibration=args.calibration, vary_fleet=True)
    report["training_path"] = {
        "env_object": 'gym.make("EdgeTrain-v0", vary_fleet=True), not unwrapped',
        "wrappers": wrappers(made),
        "actions": "random_valid_action from the full mask every step",
        "masks": 'env.get_wrapper_attr("action_masks")() (as SB3 VecEnvs get them), called before every step',
        **run(made, lambda: made.get_wrapper_attr("action_masks")(), args.seconds)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
