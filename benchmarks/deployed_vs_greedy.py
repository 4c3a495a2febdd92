"""Issue 10's live target: on the default scenario's emulated testbed (root), the learned policy's measured
Zeus cost per sample, deployed, is at most 0.90x greedy's, deployed on the same availability traces at the
same time scale. Not the simulator's verdict: every contender trains the job for real to its target.

Each contender schedules the whole job with `edgetrain deploy`'s own code (`agents.deploy.deploy`): the
learned policy, then each rule of `--rules` (greedy, and the tuned heuristic by default), one after the
other, each on a testbed of its own brought up with the same `--seed` (the testbed's availability traces
are fixed by the seed and run on the scenario clock from the testbed's start, so every contender meets
the same comings and goings). All of them price plans with the same calibration.

Without `--calibration` the devices are measured first, and without `--policy` a policy is trained on
that calibration, as `make demo` does (its TIMESTEPS, no online steps): a policy and the calibration it
was trained on belong together. `--calibration runs/demo-*/calibration.json --policy
runs/demo-*/policy/policy.zip` judges a demo's policy live.

Prints JSON: per contender and seed the deployment's totals (Zeus cost, energy and time per sample,
recoveries, decisions, plan switches, plans used, wall time), and per rule the ratio of the policy's
Zeus cost per sample to the rule's, per seed and as the ratio of the means, against the 0.90 target.

    sudo .venv/bin/python benchmarks/deployed_vs_greedy.py [--scenario smart-home-sessions] [--seeds 3]
        [--time-scale 1] [--rules greedy,heuristic] [--calibration FILE] [--policy FILE] [--out DIR]
        [--policy-results EARLIER.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgetrain.agents.deploy import DEPLOYABLE_RULES, deploy
from edgetrain.app.demo import DEPLOY_SEED, DEPLOY_TIME_SCALE, TIMESTEPS
from edgetrain.core.calibration import load_calibration
from edgetrain.core.errors import RunError, UserError
from edgetrain.core.scenario import DEFAULT_SCENARIO, load_scenario
from edgetrain.fleet.backends import open_backend, require_mininet

TARGET = 0.90


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def measured_calibration(scenario, out: Path) -> dict:
    from edgetrain.fleet.measure import calibrate_fleet
    with open_backend("mininet", scenario, out / "calibrate", follow_availability=False, progress=say) as backend:
        calibration = calibrate_fleet(backend, scenario, out / "calibrate", progress=say)
    (out / "calibration.json").write_text(json.dumps(calibration, indent=2))
    return calibration


def trained_policy(scenario, calibration: dict, out: Path) -> str:
    from edgetrain.agents.train import Task, TrainConfig, train
    zip_path, _, _ = train([Task(scenario, calibration)], str(out / "policy"), TrainConfig(timesteps=TIMESTEPS))
    return str(zip_path)


def switches(decisions: list[dict]) -> int:
    """Plan changes over the job, recoveries' new plans included (the first plan is not a switch)."""
    ran = [plan for d in decisions for plan in d["ran"]]
    return sum(1 for before, after in zip(ran, ran[1:]) if before != after)


def summary(report: dict) -> dict:
    total = report["total"]
    return {"completed": report["completed"], "zeus_cost_per_sample": total["zeus_cost_per_sample"],
            "energy_per_sample_j": total["energy_per_sample_j"], "time_per_sample_s": total["time_per_sample_s"],
            "samples": total["samples"], "lost_steps": total["lost_steps"], "recoveries": len(report["recoveries"]),
            "decisions": len(report["decisions"]), "plan_switches": switches(report["decisions"]),
            "plans_used": total["plans_used"], "wall_s": total["wall_s"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO)
    parser.add_argument("--seeds", default=str(DEPLOY_SEED), help="comma-separated testbed seeds (default: make demo's)")
    parser.add_argument("--time-scale", type=float, default=DEPLOY_TIME_SCALE)
    parser.add_argument("--rules", default="greedy,heuristic", help=f"any of {', '.join(DEPLOYABLE_RULES)}")
    parser.add_argument("--calibration", default=None, help="calibration the policy was trained on (default: measure one)")
    parser.add_argument("--policy", default=None, help="policy.zip or .onnx (default: train one on the calibration)")
    parser.add_argument("--out", default=None, help="folder for everything made (default: runs/TIME-deployed-vs-greedy)")
    parser.add_argument("--policy-results", default=None,
                        help="an earlier report of this benchmark with the same --policy, --calibration and seeds: "
                             "its policy deployments are taken from it (to measure the rules again alone)")
    args = parser.parse_args()
    require_mininet()
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    unknown = [r for r in rules if r not in DEPLOYABLE_RULES]
    if unknown:
        parser.error(f"unknown rule {unknown[0]}: the rules are {', '.join(DEPLOYABLE_RULES)}")
    if args.policy and not args.calibration:
        parser.error("--policy needs the --calibration it was trained on")
    seeds = [int(s) for s in args.seeds.split(",")]
    scenario = load_scenario(args.scenario)
    out = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-deployed-vs-greedy")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if args.calibration:
        calibration = load_calibration(args.calibration)
    else:
        say(f"measuring the {len(scenario.devices)} devices of {scenario.name} on the testbed")
        calibration = measured_calibration(scenario, out)
    if args.policy:
        policy = args.policy
    else:
        say(f"training a policy on that calibration ({TIMESTEPS} simulator steps, as make demo)")
        policy = trained_policy(scenario, calibration, out)
    contenders = {"policy": policy, **{rule: rule for rule in rules}}
    results: dict[str, dict] = {name: {} for name in contenders}
    if args.policy_results:
        earlier = json.loads(Path(args.policy_results).read_text())
        if earlier["policy"] != policy or earlier["calibration"] != args.calibration:
            raise UserError(f"{args.policy_results} deployed another policy or calibration")
        results["policy"] = {s: earlier["results"]["policy"][s] for s in map(str, seeds)
                             if s in earlier["results"]["policy"]}
        if len(results["policy"]) < len(seeds):
            raise UserError(f"{args.policy_results} has no policy deployment of some of the seeds {args.seeds}")
        del contenders["policy"]
    for seed in seeds:
        for name, which in contenders.items():
            say(f"deploying {name} (seed {seed}, availability {args.time_scale:g}x real time)")
            report = deploy(which, scenario, calibration, out / f"{name}-seed{seed}", backend="mininet",
                            time_scale=args.time_scale, seed=seed, logdir=str(out / "tensorboard"), progress=say)
            results[name][str(seed)] = summary(report)
            say(f"{name}, seed {seed}: {results[name][str(seed)]['zeus_cost_per_sample']:.4f} Zeus cost per sample")

    def mean_cost(name: str) -> float:
        return sum(r["zeus_cost_per_sample"] for r in results[name].values()) / len(seeds)
    versus = {}
    for rule in rules:
        ratio = mean_cost("policy") / mean_cost(rule)
        versus[rule] = {"ratio_of_means": ratio,
                        "per_seed": {s: results["policy"][s]["zeus_cost_per_sample"] / results[rule][s]["zeus_cost_per_sample"]
                                     for s in results["policy"]}}
    report = {"scenario": scenario.name, "seeds": seeds, "time_scale": args.time_scale,
              "calibration": args.calibration or str(out / "calibration.json"), "policy": policy,
              "results": results, "policy_vs": versus, "target": TARGET,
              "met": bool("greedy" in versus and versus["greedy"]["ratio_of_means"] <= TARGET),
              "wall_s": time.monotonic() - started}
    return written(report, out / "deployed_vs_greedy.json")


def written(report: dict, path: Path) -> int:
    """The report to its JSON file and to stdout."""
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


def run(main, name: str) -> None:
    """A benchmark's main: a refusal is one sentence and exit 2."""
    try:
        sys.exit(main())
    except (UserError, RunError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run(main, "deployed_vs_greedy")
