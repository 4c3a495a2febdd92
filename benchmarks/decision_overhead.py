"""What a decision costs besides training, on the emulated testbed (root): issue 11's target is at most
2% of the interval's training time when the plan is kept. Runs the greedy planner live on a scenario
whose devices all stay (availability ignored), first with plans kept between decisions (the default),
then with every decision starting its plan afresh (as before), and prints JSON: per decision its wall
time, the training time of its steps, and the overhead share, split into kept and switched decisions.

    .venv/bin/python benchmarks/decision_overhead.py [--decisions 10] [--decision-steps 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from edgetrain.agents.baselines import BASELINES
from edgetrain.core.calibration import default_calibration_path, load_calibration
from edgetrain.core.scenario import load_scenario
from edgetrain.envs.edgetrain_env import EdgeTrainEnv


def measure(scenario, calibration, decisions: int, decision_steps: int, keep_plans: bool) -> dict:
    env = EdgeTrainEnv(scenario=scenario, calibration=calibration, backend="mininet", decision_steps=decision_steps,
                       checkpoint_every=decision_steps, progress=lambda line: print(line, file=sys.stderr))
    env.dynamics.keep_plans = keep_plans
    act = BASELINES["greedy"](0)
    rows = []
    try:
        obs, _ = env.reset(seed=0)
        for _ in range(decisions):
            obs, _, terminated, _, info = env.step(act(env, obs))
            run = info["run"]
            training_s = sum(step["time_s"] for step in run["steps"])
            rows.append({"plan": info["plan"], "switched": bool(info["switched"]), "wall_s": info["time_s"],
                         "training_s": training_s, "overhead": info["time_s"] / training_s - 1.0,
                         "failures": info["failures"]})
            if terminated:
                break
    finally:
        env.close()
    kept = [r["overhead"] for r in rows if not r["switched"] and not r["failures"]]
    switched = [r["overhead"] for r in rows if r["switched"] and not r["failures"]]
    return {"decisions": rows,
            "kept_overhead_median": statistics.median(kept) if kept else None,
            "switched_overhead_median": statistics.median(switched) if switched else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="smart-home")
    parser.add_argument("--decisions", type=int, default=10)
    parser.add_argument("--decision-steps", type=int, default=20)
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    # Every device stays: the plan is kept unless the planner changes its mind.
    from dataclasses import replace

    from edgetrain.core.config import Availability
    scenario = replace(scenario, devices=tuple(replace(d, availability=Availability(kind="always"))
                                               for d in scenario.devices))
    calibration = load_calibration(default_calibration_path(load_scenario(args.scenario)))
    report = {"scenario": args.scenario, "decision_steps": args.decision_steps, "target_kept": 0.02}
    report["kept_plans"] = measure(scenario, calibration, args.decisions, args.decision_steps, True)
    report["restart_every_decision"] = measure(scenario, calibration, args.decisions, args.decision_steps, False)
    report["met"] = (report["kept_plans"]["kept_overhead_median"] is not None
                     and report["kept_plans"]["kept_overhead_median"] <= 0.02)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
