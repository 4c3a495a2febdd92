"""`edgetrain evaluate`: the learned policy and every baseline on the same seeded availability traces,
as a table, a JSON file and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgetrain.agents.baselines import BASELINES
from edgetrain.agents.policy import load_policy
from edgetrain.core.plans import Plan
from edgetrain.envs.edgetrain_env import EdgeTrainEnv

METRICS = ("zeus_cost", "energy_per_sample_j", "time_per_sample_s", "failures", "plan_switches", "completed")


def run_episode(env: EdgeTrainEnv, act: Callable, seed: int) -> dict:
    """One job under `act`; its figures are the env's own job totals."""
    obs, _ = env.reset(seed=seed)
    plans: dict[str, int] = {}
    for _ in range(100_000):
        obs, _, terminated, truncated, info = env.step(act(env, obs))
        if info["samples"] or info["plan"] != "none":
            plans[info["plan"]] = plans.get(info["plan"], 0) + 1
        if terminated or truncated:
            break
    job = info["job"]
    # A job that trained nothing (no device ever came) has no per-sample figures: NaN, left out of means.
    per_sample = {k: (float("nan") if v is None else v) for k, v in job.per_sample().items()}
    return {**per_sample, "failures": job.failures, "plan_switches": job.plan_switches,
            "completed": float(terminated), "plans": plans}


def policy_act(path: str, env: EdgeTrainEnv) -> Callable:
    policy = load_policy(path)  # an SB3 zip or its ONNX export, as `edgetrain deploy` loads them
    policy.check_fits(env.observation_space.shape[0], int(env.action_space.n))

    def act(env, obs):
        return policy(obs, env.action_masks())

    return act


def evaluate(scenario, calibration, policy_path: Optional[str], episodes: int, seed: int = 1000,
             progress: Callable[[str], None] = lambda line: None) -> dict:
    env = EdgeTrainEnv(scenario=scenario, calibration=calibration)
    contenders = {}
    if policy_path:
        contenders["policy"] = policy_act(policy_path, env)
    for name, make in BASELINES.items():
        contenders[name] = make(seed)
    results, episodes_out = {}, {}
    for name, act in contenders.items():
        runs = []
        for episode in range(episodes):
            runs.append(run_episode(env, act, seed + episode))  # the same traces for everyone
        results[name] = {m: _mean([r[m] for r in runs]) for m in METRICS}
        results[name]["spread"] = {m: _std([r[m] for r in runs]) for m in METRICS}
        progress(f"{name}: {episodes} episodes, Zeus cost per sample {results[name]['zeus_cost']:.4f}, "
                 f"{results[name]['completed']:.0%} of the jobs completed")
        plans: dict[str, int] = {}
        for run in runs:
            for plan, count in run["plans"].items():
                plans[plan] = plans.get(plan, 0) + count
        results[name]["most_used_plan"] = max(plans, key=plans.get) if plans else None
        episodes_out[name] = [r["zeus_cost"] for r in runs]
    return {"scenario": env.scenario.name, "episodes": episodes, "seeds": [seed, seed + episodes - 1],
            "results": results, "per_episode_zeus_cost": episodes_out}


def _mean(values: list[float]) -> float:
    """Mean over the episodes that have the figure (NaN only when none has)."""
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _std(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.std(finite)) if finite else float("nan")


def table(report: dict) -> str:
    lines = [f"{'':16s} {'Zeus cost/sample':>18s} {'J/sample':>14s} {'ms/sample':>14s} {'failures':>9s} "
             f"{'switches':>9s} {'done':>5s}  most used plan"]
    for name, r in report["results"].items():
        s = r["spread"]
        lines.append(f"{name:16s} {r['zeus_cost']:10.4f} ±{s['zeus_cost']:6.4f} "
                     f"{r['energy_per_sample_j']:7.3f} ±{s['energy_per_sample_j']:5.3f} "
                     f"{r['time_per_sample_s'] * 1e3:7.2f} ±{s['time_per_sample_s'] * 1e3:5.2f} "
                     f"{r['failures']:9.1f} {r['plan_switches']:9.1f} {r['completed']:5.0%}  {r['most_used_plan']}")
    return "\n".join(lines)


HEAD_TO_HEAD = ("greedy", "heuristic", "clairvoyant")
"""What the policy is judged against, trace by trace: the rule a person would write, the tuned rule,
and the planner that knows the trace (a bound, not a rival)."""


def head_to_head(report: dict) -> list[str]:
    """One line per reference: the mean over traces of the policy's cost / the reference's on the same
    trace, and on how many traces it was cheaper, dearer (by more than 0.1%) or level."""
    per_episode = report["per_episode_zeus_cost"]
    lines = []
    for other in (name for name in HEAD_TO_HEAD if name in per_episode and "policy" in per_episode):
        pairs = [(p, o) for p, o in zip(per_episode["policy"], per_episode[other]) if p == p and o == o]
        if not pairs:
            continue
        ratios = np.array([p / o for p, o in pairs])
        lines.append(f"policy / {other}: {ratios.mean():.3f}x Zeus cost per sample (mean over {len(pairs)} traces); "
                     f"cheaper on {int((ratios < 0.999).sum())}, dearer on {int((ratios > 1.001).sum())}, "
                     f"level on {int(((ratios >= 0.999) & (ratios <= 1.001)).sum())}")
    return lines


def plot_tradeoff(env: EdgeTrainEnv, report: dict, path: Path) -> Path:
    """Predicted energy vs time per sample of every plan on all devices, the policy's plan marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgetrain.core.feasibility import plan_problems
    from edgetrain.core.plans import enumerate_plans
    fig, ax = plt.subplots(figsize=(7, 5))
    colours = {"local": "tab:gray", "dp": "tab:blue", "pp": "tab:green", "tp": "tab:red", "sp": "tab:purple"}
    for plan in enumerate_plans(env.names, len(env.names)):
        if plan_problems(plan, env.scenario):
            continue
        p = env.cost.predict(plan)
        ax.scatter(p.step_time_s / env.batch * 1e3, p.total_energy_j / env.batch, s=12, c=colours[plan.kind],
                   label=plan.kind)
    for name, marker in (("policy", "*"), ("greedy", "x")):
        if name in report["results"] and report["results"][name]["most_used_plan"]:
            chosen = Plan.parse(report["results"][name]["most_used_plan"])
            p = env.cost.predict(chosen)
            ax.scatter(p.step_time_s / env.batch * 1e3, p.total_energy_j / env.batch, s=220, marker=marker,
                       c="black", label=f"{name}: {chosen}")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("time per sample (ms, predicted)")
    ax.set_ylabel("energy per sample (J, predicted)")
    ax.set_title(f"{env.scenario.name}: every feasible plan")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_learning_curve(run_dir: Path, path: Path) -> Optional[Path]:
    """sched/zeus_cost_per_sample over training steps, from the policy's TensorBoard run, with the
    references logged next to it by `edgetrain train` (greedy, the heuristic, the clairvoyant planner:
    mean as a line, +- one spread over their episodes as a band)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    if "sched/zeus_cost_per_sample" not in tags:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    points = events.Scalars("sched/zeus_cost_per_sample")
    steps = [p.step for p in points]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [p.value for p in points], label="policy (training episodes)", color="black")
    # Distinct line styles and widths, so that references that coincide (greedy and the heuristic often
    # do) stay visible; the spread is drawn as thin lines of the same colour, not a band that hides the curve.
    styles = {"greedy": ("tab:blue", "-", 3.0), "heuristic": ("tab:green", "--", 1.8),
              "clairvoyant": ("tab:red", ":", 1.8)}
    for name, (colour, style, width) in styles.items():
        if f"sched/reference/{name}" not in tags:
            continue
        mean = events.Scalars(f"sched/reference/{name}")[-1].value
        ax.axhline(mean, color=colour, linestyle=style, linewidth=width, alpha=0.8, label=f"{name} {mean:.4f}")
        for edge in ("low", "high"):
            ax.axhline(events.Scalars(f"sched/reference/{name}_{edge}")[-1].value, color=colour, linestyle=style,
                       linewidth=0.6, alpha=0.5)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("Zeus cost per sample (episode mean)")
    ax.set_title("learning curve and references (thin: +- one spread)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write(report: dict, json_path: str) -> None:
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(report, indent=2))
