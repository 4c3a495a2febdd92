"""How long the planner takes to find the cheapest plan of each family (issue 12: 16 devices and a
24-layer model in under 1 s, fast enough to call at every decision), and what it finds.

The fleets are made from a shipped calibration (smart-home's five measured devices, repeated: device
i is measured device i mod 5, links likewise) with the model's depth raised to 24 blocks; the cost
model prices a block from the measured per-block times, so the fleet is realistic in speed, power,
memory and links without measuring 16 devices. Prints JSON.

    .venv/bin/python benchmarks/planner_speed.py [--devices 8 16] [--layers 24] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import time

from edgetrain.core.calibration import default_calibration_path, load_calibration
from edgetrain.core.scenario import load_scenario
from edgetrain.envs.costmodel import CostModel
from edgetrain.envs.planner import Planner


def fleet(count: int, layers: int) -> tuple:
    base = load_scenario("smart-home")
    measured = load_calibration(default_calibration_path(base))
    originals = list(base.devices)
    # CPU shares scaled so the fleet passes the scenario check of one machine; the cost model prices
    # compute from the calibration, not from the shares.
    scale = min(1.0, 0.8 / sum(originals[i % len(originals)].cpu_share for i in range(count)))
    devices = tuple(dataclasses.replace(originals[i % len(originals)], name=f"dev{i}",
                                        cpu_share=originals[i % len(originals)].cpu_share * scale)
                    for i in range(count))
    model = dataclasses.replace(base.model, layers=layers)
    scenario = dataclasses.replace(base, name=f"fleet-{count}", devices=devices, model=model)
    calibration = copy.deepcopy(measured)
    calibration["model"] = dataclasses.asdict(model)
    calibration.pop("emulation", None)
    calibration["devices"] = {d.name: measured["devices"][originals[i % len(originals)].name]
                              for i, d in enumerate(devices)}
    calibration["links"] = {}
    for i, src in enumerate(devices):
        for j, dst in enumerate(devices):
            if i == j:
                continue
            a, b = originals[i % len(originals)].name, originals[j % len(originals)].name
            if a == b:  # two copies of one device: a link of the first to another device stands in
                b = next(o.name for o in originals if o.name != a)
            calibration["links"][f"{src.name}->{dst.name}"] = measured["links"][f"{a}->{b}"]
    return scenario, calibration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    report = {"target_s": 1.0, "layers": args.layers, "fleets": {}}
    for count in args.devices:
        scenario, calibration = fleet(count, args.layers)
        times, best = [], None
        for _ in range(args.repeats):
            planner = Planner(CostModel(calibration, scenario))  # a fresh cost model: no cached predictions
            start = time.perf_counter()
            best = planner.best_of_each_family(scenario.device_names)
            times.append(time.perf_counter() - start)
        report["fleets"][str(count)] = {
            "median_s": round(statistics.median(times), 4), "max_s": round(max(times), 4),
            "within_target": max(times) <= report["target_s"],
            "best": {family: {"plan": str(found.plan), "zeus_cost_per_sample": round(found.cost_per_sample, 5),
                              "step_time_s": round(found.prediction.step_time_s, 4),
                              "energy_j": round(found.prediction.total_energy_j, 3)}
                     for family, found in sorted(best.items(), key=lambda item: item[1].cost_per_sample)},
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
