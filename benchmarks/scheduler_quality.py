"""Is the learned scheduler good? The policy against the baselines on the default scenario and on
scenarios it was not trained on, with stochastic availability, on the same seeded traces (simulator).

Targets (issue #10), per scenario, on the policy's mean Zeus cost per sample:
- where greedy is already optimal (memoryless availability, every scenario not in FORESIGHT): at most
  1.02 x greedy's, and within 1.10 x the clairvoyant planner's;
- where foresight pays (FORESIGHT): at most 0.90 x greedy's and 0.95 x the tuned heuristic's, within
  1.10 x the clairvoyant planner's;
- everywhere: at least 20% below all-devices dp.
Prints JSON.

Two kinds of figures, per scenario:
- mean-based (`policy_vs`, `policy_below_all_dp`, `targets`, and `all_targets_met` over the scenarios):
  ratios of the contenders' mean costs, with no uncertainty; a policy that copies greedy scores exactly
  1.0 against it.
- paired (`paired`): every contender runs the same seeds, so each episode gives a ratio policy cost /
  other cost (and a difference); the mean ratio comes with a percentile bootstrap interval (episodes
  resampled with a fixed-seed numpy Generator, benchmarks/stats.py). The policy beats greedy
  (`beats_greedy`) only when the whole interval lies below 1; when it contains 1 it ties
  (`ties_greedy`); `greedy_verdict` says which (or "worse", or "undetermined" with fewer than 5 episodes).
  `paired_targets` asks the interval's upper end to meet each target.

    .venv/bin/python benchmarks/scheduler_quality.py [--policy runs/x/policy.zip] [--timesteps 100000]
        [--episodes 20] [--scenarios smart-home,smart-home-sessions,workshop,jetson-lab,lab-sessions]
        [--resamples 10000] [--out FILE]

Without --policy it first trains the general policy (the simulator only, as `edgetrain train` without a
scenario does, its default teacher) with the given timesteps on every built-in scenario but the held-out
ones (HELD_OUT), which it then meets for the first time, with lab-sessions (benchmarks/scenarios/, never
trained on: jetson-lab's fleet in sessions).
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

HELD_OUT = ("workshop", "jetson-lab")
"""Built-in scenarios the benchmark's policy does not train on."""
SCENARIO_FILES = Path(__file__).parent / "scenarios"
BENCHMARK_SCENARIOS = {"lab-sessions": "jetson-lab"}
"""Scenarios of benchmarks/scenarios/ (never trained on), with the built-in scenario whose shipped
calibration measured their devices."""
FORESIGHT = {"smart-home-sessions", "lab-sessions"}
"""Where foresight pays (the lifetime oracle, which knows the trace, costs 0.91-0.93x greedy there)."""
DEFAULT_SCENARIOS = ("smart-home", "smart-home-sessions") + HELD_OUT + ("lab-sessions",)
MEMORYLESS_TARGETS = {"greedy": 1.02, "clairvoyant": 1.10}
FORESIGHT_TARGETS = {"greedy": 0.90, "heuristic": 0.95, "clairvoyant": 1.10}
MIN_BELOW_ALL_DP = 0.20
COMPARED = ("greedy", "heuristic", "clairvoyant", "lifetime_oracle", "all_dp")


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def targets_of(name: str) -> dict[str, float]:
    return FORESIGHT_TARGETS if name in FORESIGHT else MEMORYLESS_TARGETS


def judge(results: dict, targets: dict[str, float]) -> dict:
    policy = results["policy"]["zeus_cost"]
    vs = {other: policy / results[other]["zeus_cost"] for other in COMPARED}
    below_all_dp = 1.0 - vs["all_dp"]
    met = {f"vs_{other}_at_most_{limit}": bool(vs[other] <= limit) for other, limit in targets.items()}
    met["below_all_dp_at_least_20pct"] = bool(below_all_dp >= MIN_BELOW_ALL_DP)
    return {"policy_vs": vs, "policy_below_all_dp": below_all_dp, "targets": met}


GREEDY_VERDICTS = {"below": "beats", "contains": "ties", "above": "worse", "undetermined": "undetermined"}


def judge_paired(per_episode: dict, targets: dict[str, float], resamples: int, seed: int) -> dict:
    """The policy against every reference, episode by episode (the same seeds)."""
    paired = {other: compare_paired(per_episode["policy"], per_episode[other], resamples, CONFIDENCE, seed)
              for other in COMPARED}
    verdict = GREEDY_VERDICTS[paired["greedy"]["one_in_ratio_ci"]]

    def high(other: str) -> float:  # no verdict from fewer than MIN_PAIRS episodes
        entry = paired[other]
        return entry["mean_ratio_ci"][1] if entry["episodes_paired"] >= MIN_PAIRS else float("nan")

    met = {f"vs_{other}_at_most_{limit}": bool(high(other) <= limit) for other, limit in targets.items()}
    met["below_all_dp_at_least_20pct"] = bool(high("all_dp") <= 1.0 - MIN_BELOW_ALL_DP)
    return {"paired": paired, "greedy_verdict": verdict,
            "beats_greedy": verdict == "beats", "ties_greedy": verdict == "ties", "paired_targets": met}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=None, help="policy.zip (the general policy trained here when absent)")
    parser.add_argument("--timesteps", type=int, default=100_000, help="training steps when no --policy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--eval-seed", type=int, default=5000, help="seed of the first evaluation episode")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS))
    parser.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap resamples")
    parser.add_argument("--bootstrap-seed", type=int, default=SEED, help="seed of the bootstrap's Generator")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    if args.resamples < 1:
        parser.error("--resamples must be at least 1")
    report = {"held_out": list(HELD_OUT) + sorted(BENCHMARK_SCENARIOS), "episodes": args.episodes, "targets": {
        "memoryless": MEMORYLESS_TARGETS, "foresight": FORESIGHT_TARGETS, "foresight_scenarios": sorted(FORESIGHT),
        "min_policy_below_all_dp": MIN_BELOW_ALL_DP},
        "mean_based": {"figures": ["policy_vs", "policy_below_all_dp", "targets", "all_targets_met"],
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
        trained_on: list[str] = []
        if policy is None:
            from edgetrain.agents.train import TrainConfig, general_tasks, train
            tasks = general_tasks(exclude=HELD_OUT)
            trained_on = [t.scenario.name for t in tasks]
            log(f"training the general policy on {', '.join(trained_on)}: {args.timesteps} simulator steps")
            started = time.perf_counter()
            policy, _, _ = train(tasks, str(Path(tmp) / "policy"), TrainConfig(timesteps=args.timesteps, seed=args.seed),
                                 logdir=str(Path(tmp) / "logs"), progress_bar=False)
            report["training"] = {"timesteps": args.timesteps, "seed": args.seed, "trained_on": trained_on,
                                  "teacher": TrainConfig().teacher, "seconds": time.perf_counter() - started}
        report["policy"] = str(policy) if args.policy else "trained by this benchmark"
        for name in args.scenarios.split(","):
            if name in BENCHMARK_SCENARIOS:
                scenario = load_scenario(str(SCENARIO_FILES / f"{name}.yaml"))
                calibration = load_calibration(default_calibration_path(load_scenario(BENCHMARK_SCENARIOS[name])))
            else:
                scenario = load_scenario(name)
                calibration = load_calibration(default_calibration_path(scenario))
            result = evaluate(scenario, calibration, str(policy), args.episodes, seed=args.eval_seed, progress=log)
            entry = {"seen_in_training": name in trained_on if trained_on else "unknown (--policy)",
                     "foresight_pays": name in FORESIGHT,
                     "results": {k: {m: v[m] for m in ("zeus_cost", "energy_per_sample_j", "time_per_sample_s",
                                                       "failures", "plan_switches", "most_used_plan")}
                                 for k, v in result["results"].items()}}
            entry.update(judge(result["results"], targets_of(name)))
            entry.update(judge_paired(result["per_episode_zeus_cost"], targets_of(name), args.resamples,
                                      args.bootstrap_seed))
            report["scenarios"][name] = entry
            low, high = entry["paired"]["greedy"]["mean_ratio_ci"]
            vs = entry["policy_vs"]
            log(f"{name}: means: policy/greedy {vs['greedy']:.3f}, /heuristic {vs['heuristic']:.3f}, "
                f"/clairvoyant {vs['clairvoyant']:.3f}, below all_dp {entry['policy_below_all_dp']:.1%}; paired: "
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
