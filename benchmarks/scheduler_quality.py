"""Is the learned scheduler good? The policy against the baselines on the default scenario and on
scenarios it was not trained on, with stochastic availability, on the same seeded traces (simulator).

Targets, per scenario: the policy's Zeus cost per sample at most 1.10 x the clairvoyant oracle's, at
least 20% below all-devices dp, and no worse than the greedy planner. Prints JSON.

    .venv/bin/python benchmarks/scheduler_quality.py [--policy runs/x/policy.zip] [--timesteps 100000]
        [--episodes 20] [--scenarios smart-home,smart-home-busy,workshop] [--out FILE]

Without --policy it first trains one on smart-home (the simulator only) with the given timesteps.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from edgetrain.agents.evaluate import evaluate
from edgetrain.core.calibration import default_calibration_path, load_calibration
from edgetrain.core.scenario import load_scenario

TRAINED_ON = "smart-home"
UNSEEN = ("smart-home-busy", "workshop")
MAX_VS_ORACLE = 1.10
MIN_BELOW_ALL_DP = 0.20


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def judge(results: dict) -> dict:
    policy = results["policy"]["zeus_cost"]
    vs_oracle = policy / results["oracle"]["zeus_cost"]
    below_all_dp = 1.0 - policy / results["all_dp"]["zeus_cost"]
    vs_greedy = policy / results["greedy"]["zeus_cost"]
    return {"policy_vs_oracle": vs_oracle, "policy_below_all_dp": below_all_dp, "policy_vs_greedy": vs_greedy,
            "targets": {"vs_oracle_at_most_1.10": vs_oracle <= MAX_VS_ORACLE,
                        "below_all_dp_at_least_20pct": below_all_dp >= MIN_BELOW_ALL_DP,
                        "no_worse_than_greedy": vs_greedy <= 1.0}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=None, help="policy.zip (trained on smart-home when absent)")
    parser.add_argument("--timesteps", type=int, default=100_000, help="training steps when no --policy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--eval-seed", type=int, default=5000, help="seed of the first evaluation episode")
    parser.add_argument("--scenarios", default=",".join((TRAINED_ON,) + UNSEEN))
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    report = {"trained_on": TRAINED_ON, "episodes": args.episodes, "targets": {
        "max_policy_vs_oracle": MAX_VS_ORACLE, "min_policy_below_all_dp": MIN_BELOW_ALL_DP,
        "max_policy_vs_greedy": 1.0}, "scenarios": {}}
    with tempfile.TemporaryDirectory() as tmp:
        policy = args.policy
        if policy is None:
            from edgetrain.agents.train import TrainConfig, train
            log(f"training a policy on {TRAINED_ON}: {args.timesteps} simulator steps")
            started = time.perf_counter()
            policy, _, _ = train(TRAINED_ON, load_calibration(default_calibration_path(load_scenario(TRAINED_ON))),
                                 str(Path(tmp) / "policy"), TrainConfig(timesteps=args.timesteps, seed=args.seed),
                                 logdir=str(Path(tmp) / "logs"), progress_bar=False)
            report["training"] = {"timesteps": args.timesteps, "seed": args.seed,
                                  "seconds": time.perf_counter() - started}
        report["policy"] = str(policy) if args.policy else "trained by this benchmark"
        for name in args.scenarios.split(","):
            scenario = load_scenario(name)
            calibration = load_calibration(default_calibration_path(scenario))
            result = evaluate(scenario, calibration, str(policy), args.episodes, seed=args.eval_seed, progress=log)
            entry = {"seen_in_training": name == TRAINED_ON,
                     "results": {k: {m: v[m] for m in ("zeus_cost", "energy_per_sample_j", "time_per_sample_s",
                                                       "failures", "plan_switches", "most_used_plan")}
                                 for k, v in result["results"].items()}}
            entry.update(judge(result["results"]))
            report["scenarios"][name] = entry
            log(f"{name}: policy/oracle {entry['policy_vs_oracle']:.3f}, below all_dp "
                f"{entry['policy_below_all_dp']:.1%}, policy/greedy {entry['policy_vs_greedy']:.3f}")
    report["all_targets_met"] = all(all(e["targets"].values()) for e in report["scenarios"].values())
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
