"""Issue 12's target for hybrid plans, measured live: on a heterogeneous fleet, the planner's best hybrid
plan costs at least 20% less (Zeus cost per sample) than the best plan of the four uniform kinds (and
one device) on the same devices.

The planner picks both from the calibration (the cheapest feasible hybrid, and the cheapest feasible
uniform plan); both then train for real on the emulated testbed (root), warm (the first step of each
is not timed), in alternation for `--rounds` rounds so that the machine's drift falls on both alike.
Prints JSON: each plan's predicted and measured step time, energy and Zeus cost per sample, and the
measured ratio hybrid / best uniform.

    .venv/bin/python benchmarks/hybrid_live.py [--scenario big-model] [--steps 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from edgetrain.core.calibration import default_calibration_path, load_calibration
from edgetrain.core.objective import EnergyTimeCost
from edgetrain.core.plans import HYBRID
from edgetrain.core.scenario import load_scenario
from edgetrain.envs.costmodel import CostModel
from edgetrain.envs.planner import Planner
from edgetrain.fleet.backends import open_backend
from edgetrain.fleet.measure import measure_plans, warm_up_devices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="big-model")
    parser.add_argument("--calibration", default=None, help="default: the scenario's shipped calibration")
    parser.add_argument("--steps", type=int, default=6, help="steps per measurement (the first is not timed)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    calibration = load_calibration(args.calibration or default_calibration_path(scenario))
    planner = Planner(CostModel(calibration, scenario))
    best = planner.best_of_each_family(scenario.device_names)
    if HYBRID not in best:
        raise SystemExit("no feasible hybrid plan on this fleet")
    uniform = min((found for family, found in best.items() if family != HYBRID), key=lambda f: f.cost_per_sample)
    chosen = {"hybrid": best[HYBRID], "best_uniform": uniform}
    cost = EnergyTimeCost.of(scenario)
    samples = scenario.model.batch_size
    measured: dict[str, list] = {name: [] for name in chosen}
    with tempfile.TemporaryDirectory(prefix="edgetrain-hybrid-live-") as tmp, \
            open_backend("mininet", scenario, Path(tmp), follow_availability=False) as backend:
        warm_up_devices(backend, scenario)
        for round_ in range(args.rounds):
            for name, found in chosen.items():
                print(f"round {round_ + 1}: {name} {found.plan}", file=sys.stderr)
                measured[name] += measure_plans(backend, scenario, [found.plan], Path(tmp) / f"{name}{round_}",
                                                steps=args.steps)
    report = {"scenario": scenario.name, "target_ratio": 0.8, "families_predicted": {
        family: round(found.cost_per_sample, 5) for family, found in best.items()}}
    for name, found in chosen.items():
        time_s = statistics.fmean(m.time_s for m in measured[name])
        energy_j = statistics.fmean(m.energy_j for m in measured[name])
        report[name] = {
            "plan": str(found.plan),
            "predicted": {"step_time_s": round(found.prediction.step_time_s, 4),
                          "energy_j": round(found.prediction.total_energy_j, 3),
                          "zeus_cost_per_sample": round(found.cost_per_sample, 5)},
            "measured": {"step_time_s": round(time_s, 4), "energy_j": round(energy_j, 3),
                         "zeus_cost_per_sample": round(cost.zeus_cost(energy_j, time_s) / samples, 5),
                         "per_round_step_time_s": [round(m.time_s, 4) for m in measured[name]]},
        }
    ratio = report["hybrid"]["measured"]["zeus_cost_per_sample"] / report["best_uniform"]["measured"]["zeus_cost_per_sample"]
    report["measured_ratio"] = round(ratio, 4)
    report["target_met"] = ratio <= report["target_ratio"]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
