"""Is the learned scheduler good? The policy against the baselines on the default scenario and on
scenarios it was not trained on, with stochastic availability, on the same seeded traces (simulator).

Targets, per scenario: the policy's Zeus cost per sample at most 1.10 x the clairvoyant oracle's, at
least 20% below all-devices dp, and no worse than the greedy planner. Prints JSON.

Two kinds of figures, per scenario:
- mean-based (`policy_vs_oracle`, `policy_below_all_dp`, `policy_vs_greedy`, `targets`, and
  `all_targets_met` over the scenarios): ratios of the contenders' mean costs, with no uncertainty; a
  policy that copies greedy scores exactly 1.0 against it and meets "no worse than greedy".
- paired (`paired`): every contender runs the same seeds, so each episode gives a ratio policy cost /
  other cost (and a difference); the mean ratio comes with a percentile bootstrap interval (episodes
  resampled with a fixed-seed numpy Generator, benchmarks/stats.py). The policy beats greedy
  (`beats_greedy`) only when the whole interval lies below 1; when it contains 1 it ties
  (`ties_greedy`); `greedy_verdict` says which (or "worse", or "undetermined" with fewer than 5 episodes).

    .venv/bin/python benchmarks/scheduler_quality.py [--policy runs/x/policy.zip] [--timesteps 100000]
        [--episodes 20] [--scenarios smart-home,smart-home-busy,workshop] [--resamples 10000] [--out FILE]

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

from stats import CONFIDENCE, MIN_PAIRS, RESAMPLES, SEED, compare_paired

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


GREEDY_VERDICTS = {"below": "beats", "contains": "ties", "above": "worse", "undetermined": "undetermined"}


def judge_paired(per_episode: dict, resamples: int, seed: int) -> dict:
    """The policy against greedy, the oracle and all_dp, episode by episode (the same seeds)."""
    paired = {other: compare_paired(per_episode["policy"], per_episode[other], resamples, CONFIDENCE, seed)
              for other in ("greedy", "oracle", "all_dp")}
    verdict = GREEDY_VERDICTS[paired["greedy"]["one_in_ratio_ci"]]
    # The same targets on the paired figures: the interval's upper end must meet them (and no verdict
    # from fewer than MIN_PAIRS episodes).
    oracle_high, all_dp_high = (paired[k]["mean_ratio_ci"][1] if paired[k]["episodes_paired"] >= MIN_PAIRS
                                else float("nan") for k in ("oracle", "all_dp"))
    return {"paired": paired, "greedy_verdict": verdict,
            "beats_greedy": verdict == "beats", "ties_greedy": verdict == "ties",
            "paired_targets": {
                "vs_oracle_at_most_1.10": bool(oracle_high <= MAX_VS_ORACLE),
                "below_all_dp_at_least_20pct": bool(all_dp_high <= 1.0 - MIN_BELOW_ALL_DP),
                "no_worse_than_greedy": verdict in ("beats", "ties")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=None, help="policy.zip (trained on smart-home when absent)")
    parser.add_argument("--timesteps", type=int, default=100_000, help="training steps when no --policy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--eval-seed", type=int, default=5000, help="seed of the first evaluation episode")
    parser.add_argument("--scenarios", default=",".join((TRAINED_ON,) + UNSEEN))
    parser.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap resamples")
    parser.add_argument("--bootstrap-seed", type=int, default=SEED, help="seed of the bootstrap's Generator")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    if args.resamples < 1:
        parser.error("--resamples must be at least 1")
    report = {"trained_on": TRAINED_ON, "episodes": args.episodes, "targets": {
        "max_policy_vs_oracle": MAX_VS_ORACLE, "min_policy_below_all_dp": MIN_BELOW_ALL_DP,
        "max_policy_vs_greedy": 1.0},
        "mean_based": {"figures": ["policy_vs_oracle", "policy_below_all_dp", "policy_vs_greedy", "targets",
                                   "all_targets_met"],
                       "meaning": "ratios of the contenders' mean Zeus cost per sample over the episodes, "
                                  "with no uncertainty (a copy of greedy scores exactly 1.0 against it)"},
        "paired_method": {
            "pairs": "per episode, the same seed for every contender: ratio = policy cost / other cost, "
                     "difference = policy cost - other cost (Zeus cost per sample); episodes where either "
                     "trained nothing are left out",
            "interval": "percentile bootstrap of the mean, episodes resampled with replacement",
            "confidence": CONFIDENCE, "resamples": args.resamples, "generator": "numpy default_rng",
            "seed": args.bootstrap_seed, "min_episodes_for_a_verdict": MIN_PAIRS,
            "beats_greedy": "the whole interval of the mean ratio policy/greedy lies below 1",
            "ties_greedy": "the interval contains 1"},
        "scenarios": {}}
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
            entry.update(judge_paired(result["per_episode_zeus_cost"], args.resamples, args.bootstrap_seed))
            report["scenarios"][name] = entry
            low, high = entry["paired"]["greedy"]["mean_ratio_ci"]
            log(f"{name}: means: policy/oracle {entry['policy_vs_oracle']:.3f}, below all_dp "
                f"{entry['policy_below_all_dp']:.1%}, policy/greedy {entry['policy_vs_greedy']:.3f}; paired: "
                f"policy/greedy {entry['paired']['greedy']['mean_ratio']:.3f} [{low:.3f}, {high:.3f}] "
                f"({entry['greedy_verdict']})")
    report["all_targets_met"] = all(all(e["targets"].values()) for e in report["scenarios"].values())
    report["all_paired_targets_met"] = all(all(e["paired_targets"].values()) for e in report["scenarios"].values())
    report["beats_greedy_everywhere"] = all(e["beats_greedy"] for e in report["scenarios"].values())
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
