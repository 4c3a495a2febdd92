"""Training that survives devices that vanish: restore the last checkpoint and go on with the
devices still there, on a plan that works for them."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Optional

from edgetrain.core.config import Scenario
from edgetrain.core.errors import DeviceLost, OutOfMemory, RunError
from edgetrain.core.feasibility import plan_problems
from edgetrain.core.plans import FALLBACK_KINDS, HYBRID, Plan
from edgetrain.runtime.coordinator.job import FaultFn, Job, PlanSession, ProgressFn, run_job
from edgetrain.runtime.coordinator.launcher import Launcher
from edgetrain.runtime.coordinator.metrics import RunMetrics
from edgetrain.runtime.training.checkpoint import load_checkpoint


def replan(plan: Plan, available: list[str], scenario: Scenario) -> Optional[Plan]:
    """The same kind on the remaining devices of the plan (kept in their order; a hybrid keeps its
    stages, less the lost devices) if it can run, else another kind, else one device alone (the plan's
    first remaining device)."""
    remaining = [d for d in plan.devices if d in available]
    if not remaining:
        remaining = [d for d in scenario.device_names if d in available][:1]
    if not remaining:
        return None
    if len(remaining) == 1:
        candidates = [Plan("local", tuple(remaining))]
    else:
        kinds = [plan.kind] + [k for k in FALLBACK_KINDS if k != plan.kind] if plan.kind in FALLBACK_KINDS else FALLBACK_KINDS
        candidates = [Plan(kind, tuple(remaining)) for kind in kinds]
        if plan.kind == HYBRID:
            smaller = plan.without(set(plan.devices) - set(remaining))
            candidates = ([smaller] if smaller is not None else []) + candidates
        candidates += [Plan("local", (d,)) for d in remaining]
    for candidate in candidates:
        if not plan_problems(candidate, scenario):
            return candidate
    return None


def run_with_recovery(job: Job, launcher: Launcher, progress: ProgressFn = lambda line: None,
                      inject_fault: Optional[FaultFn] = None, max_recoveries: int = 10,
                      wait_for_devices_s: float = 30.0, session: Optional[PlanSession] = None) -> RunMetrics:
    """Run the job to its last step whatever devices are lost on the way; the metrics carry a
    `recoveries` entry (devices, step, seconds to resume) for every loss."""
    if not job.checkpoint_out:
        raise RunError("recovery needs checkpoints: give the job a checkpoint path")
    metrics: Optional[RunMetrics] = None
    current = dataclasses.replace(job, standby=True)  # a recovery then starts in warm processes
    pending: Optional[dict] = None  # the last recovery, until its first step tells how long it took
    while True:
        try:
            metrics = run_job(current, launcher, progress, inject_fault, metrics, session=session)
            if pending is not None:
                _finish_record(pending, metrics)
            return metrics
        except DeviceLost as lost:
            metrics = lost.metrics
            if pending is not None:
                _finish_record(pending, metrics)
            if len(metrics.recoveries) >= max_recoveries:
                raise RunError(f"gave up after {max_recoveries} recoveries: {lost}") from None
            target_step = metrics.start_step + job.steps
            resume_from, resume_step = _resume_point(metrics, job, len(metrics.recoveries))
            progress(f"{lost}; resuming from step {resume_step}" if isinstance(lost, OutOfMemory) else
                     f"lost {', '.join(lost.devices)} after step {lost.step}; resuming from step {resume_step}")
            new_plan = _wait_for_plan(current.plan, lost.devices, launcher, job.scenario, wait_for_devices_s)
            if new_plan is None:
                raise RunError(f"no plan can run on the devices still available after losing "
                               f"{', '.join(lost.devices)}") from None
            progress(f"recovering on {new_plan}")
            pending = {"devices": lost.devices, "step": lost.step, "resumed_from_step": resume_step,
                       "cause": "out of memory" if isinstance(lost, OutOfMemory) else "device lost",
                       "lost_steps": lost.step - resume_step, "old_plan": str(current.plan),
                       "new_plan": str(new_plan), "detected_at": lost.detected_at}
            metrics.recoveries.append(pending)
            current = dataclasses.replace(current, plan=new_plan, resume=resume_from,
                                          steps=target_step - resume_step)


def _resume_point(metrics: RunMetrics, job: Job, index: int) -> tuple[Optional[str], int]:
    """The checkpoint to go on from, copied (a checkpoint still on its way lands at the same path and
    would change the step under the recovery's feet), and its step read from that copy: a plan that
    went on in held shards started from a step whose checkpoint may not have arrived before the loss."""
    source = metrics.checkpoints[-1]["path"] if metrics.checkpoints else job.resume
    if source is None or not Path(source).is_file():
        return None, 0  # nothing was saved yet: from the start
    job.run_dir.mkdir(parents=True, exist_ok=True)
    snapshot = job.run_dir / f"resume-{index}.pt"
    shutil.copyfile(source, snapshot)
    return str(snapshot), int(load_checkpoint(str(snapshot))["step"])


def _finish_record(record: dict, metrics: RunMetrics) -> None:
    detected = record.pop("detected_at", None)
    if metrics.first_step_at is not None and detected is not None:
        record["seconds_to_resume"] = metrics.first_step_at - detected


def _wait_for_plan(plan: Plan, lost: list[str], launcher: Launcher, scenario: Scenario,
                   timeout_s: float) -> Optional[Plan]:
    """A plan on the devices still there, without the lost ones; when none can run without them, one
    that takes back lost devices which answer again (a device that blinked off the network), within
    `timeout_s`. The plan's other members are asked first: they are connected and answer at once, while
    probing a device that is gone (the lost one, or one offline for its availability) costs a connection
    timeout, which a recovery onto the survivors need not wait for."""
    deadline = time.monotonic() + timeout_s
    survivors = [d for d in plan.devices if d not in lost]
    others = [d for d in scenario.device_names if d not in lost and d not in survivors]
    while True:
        there = launcher.available_devices(survivors) if survivors else []
        new_plan = replan(plan, there, scenario)
        if new_plan is None:
            there += launcher.available_devices(others)
            new_plan = replan(plan, there, scenario)
        if new_plan is None:
            new_plan = replan(plan, there + launcher.available_devices(lost), scenario)
        if new_plan is not None or time.monotonic() > deadline:
            return new_plan
        time.sleep(0.5)
