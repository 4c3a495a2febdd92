"""Steps per second of EdgeTrain-v0 on the sim backend, on one core, with valid random actions drawn
from the action masks (the shared `random_valid_action`, whose cost is included). Target: at least
20,000. Prints JSON.

    .venv/bin/python benchmarks/env_throughput.py [--seconds 10] [--calibration FILE]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--calibration", "--profile", default=None)
    parser.add_argument("--scenario", default=None)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    env = gym.make("EdgeTrain-v0", scenario=args.scenario, calibration=args.calibration).unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    steps = episodes = 0
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        for _ in range(1000):
            _, _, terminated, truncated, _ = env.step(random_valid_action(env.action_masks(), rng))
            steps += 1
            if terminated or truncated:
                episodes += 1
                env.reset()
    elapsed = time.perf_counter() - start
    rate = steps / elapsed
    print(json.dumps({"env": "EdgeTrain-v0", "backend": "sim", "scenario": env.scenario.name, "steps": steps,
                      "episodes": episodes, "seconds": elapsed, "steps_per_s": rate, "target_steps_per_s": TARGET,
                      "target_met": rate >= TARGET, "masks_computed_every_step": True}, indent=2))


if __name__ == "__main__":
    main()
