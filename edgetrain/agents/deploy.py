"""`edgetrain deploy`: a learned policy schedules a real training job.

At every decision the policy observes the live fleet (which devices are there, for how long, their
batteries, the job's progress and current plan) through EdgeTrain-v0's live backend, picks a plan,
and the runtime trains that plan for real for one decision interval, from the job's last checkpoint.
A device that leaves during an interval is recovered from at once (restore the last checkpoint, go on
with the devices left); at the next decision the policy replans with what it sees, returning devices
included. It ends when the scenario's target samples are trained, and leaves the trained model's
checkpoint, a metrics JSON and a TensorBoard run.

In place of a policy file, one of the rules a person could run by hand (`DEPLOYABLE_RULES`: greedy, the
tuned heuristic, ...) can schedule the same job, so that what the learned policy saves is measured live
on the same availability traces, not only in the simulator (benchmarks/deployed_vs_greedy.py).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgetrain.agents.baselines import BASELINES, CLAIRVOYANT
from edgetrain.agents.policy import load_policy
from edgetrain.core.config import Scenario
from edgetrain.core.errors import UserError
from edgetrain.envs.candidates import MAX_CANDIDATES
from edgetrain.envs.edgetrain_env import OBSERVATION_SIZE, EdgeTrainEnv
from edgetrain.envs.state import JobTotals

DEPLOYABLE_RULES = ("greedy", "heuristic", "fastest_single", "all_dp")
"""Baselines that see only what a deployment sees (no future availability), by name for --policy."""

Scheduler = Callable[[EdgeTrainEnv, np.ndarray], object]
"""act(env, observation) -> an offer's index or a plan (`ResolvedPlan`), as the env's step takes."""


def scheduler_for(policy: str) -> Scheduler:
    """The learned policy in a file (SB3 zip or ONNX), or a deployable rule by name; checked against this
    EdgeTrain-v0's layout before any testbed or device is touched."""
    if policy in DEPLOYABLE_RULES:
        return BASELINES[policy](0)
    if policy in CLAIRVOYANT:
        raise UserError(f"{policy} knows each episode's future availability, which no deployment does: it judges "
                        f"policies in the simulator (`edgetrain evaluate`); deploy a policy file or one of "
                        f"{', '.join(DEPLOYABLE_RULES)}")
    act = load_policy(policy)
    act.check_fits(OBSERVATION_SIZE, MAX_CANDIDATES)
    return lambda env, obs: act(obs, env.action_masks())


def deploy(policy: str, scenario: Scenario, calibration, out: Path, backend: str = "mininet", cluster=None,
           decision_steps: int = 10, checkpoint_every: int = 5, time_scale: float = 1.0, seed: int = 0,
           logdir: str = "training_logs", progress: Callable[[str], None] = lambda line: None,
           busy_devices: tuple = (), recalibrate: bool = True) -> dict:
    """Run the job to its target under the policy (a file, or a rule of `DEPLOYABLE_RULES`); returns (and
    writes to out/metrics.json) the report. A job that fails on the way still writes what it did
    (`completed: false`); its last checkpoint is in out/live and `edgetrain run --resume` continues from it.
    `busy_devices`: testbed devices running work of their own (`Testbed.busy_devices`); `recalibrate`:
    False prices every decision by the calibration as given (for comparison)."""
    from torch.utils.tensorboard import SummaryWriter
    act = scheduler_for(policy)
    out.mkdir(parents=True, exist_ok=True)
    env = EdgeTrainEnv(scenario=scenario, calibration=calibration, backend=backend, cluster=cluster,
                       decision_steps=decision_steps, checkpoint_every=checkpoint_every, time_scale=time_scale,
                       live_dir=str(out / "live"), progress=progress, busy_devices=busy_devices,
                       recalibrate=recalibrate)
    run_dir = Path(logdir) / f"{scenario.name}__deploy__{seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    writer = SummaryWriter(str(run_dir))
    decisions: list[dict] = []
    steps: list[dict] = []
    recoveries: list[dict] = []
    started = time.monotonic()
    completed = False
    checkpoint = None
    try:
        obs, _ = env.reset(seed=seed)
        progress(f"deploying {policy} on {scenario.name} ({backend}): {scenario.objective.target_samples} samples "
                 f"to train, {decision_steps} steps per decision")
        terminated = False
        while not terminated:
            available = env.available_devices()
            action = act(env, obs)
            chosen = env.plan_for(action).plan
            obs, reward, terminated, _, info = env.step(action)
            job = info["job"]
            run = info.pop("run")
            steps.extend({"step": s["step"], "loss": s["loss"], "time_s": s["time_s"], "energy_j": s["energy_j"],
                          "plan": _plan_at(run["plans"], s["step"])} for s in run["steps"])
            recoveries.extend(run["recoveries"])
            decision = {"decision": len(decisions), "available": available,
                        "policy_plan": str(chosen),
                        "ran": [p["plan"] for p in run["plans"]], "steps": info["steps"],
                        "samples_done": job.samples, "time_s": info["time_s"], "energy_j": info["energy_j"],
                        "zeus_cost": info["zeus_cost"], "failures": info["failures"], "loss": run["steps"][-1]["loss"],
                        "checkpoints": [c["step"] for c in run["checkpoints"]]}
            if "prediction" in info:  # the measured steps against what was predicted (envs.recalibration)
                decision["prediction"] = info["prediction"]
            decisions.append(decision)
            _log_decision(writer, decision, run)
            progress(f"decision {decision['decision']}: {decision['policy_plan']} (available: {', '.join(available)}) "
                     f"-> steps {info['steps'][0]}..{info['steps'][1]}, loss {decision['loss']:.4f}, "
                     f"{info['time_s']:.1f} s, {job.samples}/{env.target} samples"
                     + (f", {info['failures']} recovery" if info["failures"] else "")
                     + _prediction_line(info.get("prediction")))
        checkpoint = out / "checkpoint.pt"
        shutil.copyfile(env.dynamics.episode_checkpoint, checkpoint)
        completed = True
    finally:
        writer.close()
        live_checkpoint = env.dynamics.episode_checkpoint if env.dynamics.episode else None
        if live_checkpoint is not None and not live_checkpoint.is_file():
            live_checkpoint = None  # it failed before its first checkpoint
        env.close()
        report = _report(scenario, policy, backend, env.target, decision_steps, run_dir, decisions, steps,
                         recoveries, env.state.totals if env.state else None, time.monotonic() - started,
                         checkpoint if completed else live_checkpoint, completed)
        (out / "metrics.json").write_text(json.dumps(report, indent=2))
    return report


def _report(scenario, policy, backend, target, decision_steps, run_dir, decisions, steps, recoveries, job,
            wall_s, checkpoint, completed) -> dict:
    """The deployment's report; its totals are the env's job totals (`JobTotals`), priced once."""
    job = job or JobTotals()
    per_sample = job.per_sample()
    return {
        "scenario": scenario.name, "policy": str(policy), "backend": backend, "target_samples": target,
        "completed": completed, "decision_steps": decision_steps,
        "checkpoint": str(checkpoint) if checkpoint else None, "tensorboard": str(run_dir),
        "decisions": decisions, "steps": steps, "recoveries": recoveries,
        "total": {"samples": job.samples, "steps": len(steps), "lost_steps": job.lost_steps,
                  "energy_j": job.energy_j, "time_s": job.time_s, "wall_s": wall_s, "zeus_cost": job.zeus_cost,
                  "zeus_cost_per_sample": per_sample["zeus_cost"],
                  "energy_per_sample_j": per_sample["energy_per_sample_j"],
                  "time_per_sample_s": per_sample["time_per_sample_s"],
                  "final_loss": steps[-1]["loss"] if steps else None,
                  "plans_used": sorted({p for d in decisions for p in d["ran"]})},
        "prediction_error": prediction_summary(decisions),
    }


def prediction_summary(decisions: list[dict]) -> dict:
    """Mean absolute relative error of the predicted step time and energy over the decisions that
    measured steady steps: by the shipped calibration, and by the model recalibrated on the decisions
    before each one (the first decision has nothing to learn from: it is left out of both means)."""
    later = [d["prediction"] for d in decisions[1:] if "prediction" in d]

    def mean_abs(which: str, key: str) -> Optional[float]:
        return sum(abs(p[which][key]) for p in later) / len(later) if later else None
    return {"decisions": len(later),
            "calibrated": {"time": mean_abs("calibrated", "time_error"), "energy": mean_abs("calibrated", "energy_error")},
            "recalibrated": {"time": mean_abs("recalibrated", "time_error"),
                             "energy": mean_abs("recalibrated", "energy_error")}}


def _prediction_line(prediction: Optional[dict]) -> str:
    if prediction is None:
        return ""
    return (f"; step {prediction['measured']['step_s']:.3f} s measured, predicted "
            f"{prediction['recalibrated']['time_error']:+.0%} (shipped calibration "
            f"{prediction['calibrated']['time_error']:+.0%})")


def _plan_at(plans: list[dict], step: int) -> str:
    """The plan that trained `step` (a run's plans, each from the step it resumed after)."""
    current = plans[0]["plan"]
    for entry in plans:
        if entry["from_step"] < step:
            current = entry["plan"]
    return current


def _log_decision(writer, decision: dict, run: dict) -> None:
    from edgetrain.core.plans import ALL_KINDS
    index = decision["decision"]
    for s in run["steps"]:
        writer.add_scalar("train/loss", s["loss"], s["step"])
        writer.add_scalar("train/step_time_s", s["time_s"], s["step"])
        writer.add_scalar("train/step_energy_j", s["energy_j"], s["step"])
    writer.add_scalar("deploy/zeus_cost_per_sample", decision["zeus_cost"] / max(run["total"]["samples"], 1), index)
    writer.add_scalar("deploy/time_s", decision["time_s"], index)
    writer.add_scalar("deploy/energy_j", decision["energy_j"], index)
    writer.add_scalar("deploy/available_devices", len(decision["available"]), index)
    writer.add_scalar("deploy/failures", decision["failures"], index)
    last = decision["ran"][-1]
    kind, _, devices = last.partition(":")
    writer.add_scalar("deploy/plan_kind", ALL_KINDS.index(kind), index)
    writer.add_scalar("deploy/devices_in_plan", len(devices.split(",")), index)
    if "prediction" in decision:
        for which in ("calibrated", "recalibrated"):
            writer.add_scalar(f"predict/{which}_time_error", decision["prediction"][which]["time_error"], index)
            writer.add_scalar(f"predict/{which}_energy_error", decision["prediction"][which]["energy_error"], index)
    writer.add_text("deploy/plan", f"decision {index}: {' then '.join(decision['ran'])}", index)


def with_target(scenario: Scenario, target_samples: Optional[int]) -> Scenario:
    if target_samples is None:
        return scenario
    if target_samples < 1:
        raise UserError("--target-samples must be at least 1")
    return dataclasses.replace(scenario, objective=dataclasses.replace(scenario.objective,
                                                                        target_samples=target_samples))
