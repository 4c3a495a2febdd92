"""Whether a plan can run at all on its devices, decided before any process starts.

Checks the divisibility each parallelism needs and whether each device's share of the model, its
optimizer state and its activations fits in that device's memory.
"""

from __future__ import annotations

from edgetrain.core.config import Scenario
from edgetrain.core.errors import PlanError
from edgetrain.core.memory import estimate_memory
from edgetrain.core.plans import HYBRID, Plan
from edgetrain.core.sizing import hybrid_microbatches, pipeline_microbatches


def plan_problems(plan: Plan, scenario: Scenario) -> list[str]:
    """Every reason this plan cannot run, as sentences; empty when it can."""
    cfg, n = scenario.model, plan.degree
    problems = []
    unknown = [d for d in plan.devices if d not in scenario.device_names]
    if unknown:
        return [f"device {unknown[0]!r} is not in scenario {scenario.name} "
                f"(devices: {', '.join(scenario.device_names)})"]
    for device in plan.devices:
        modes = [m.name for m in scenario.device(device).power_modes]
        if plan.mode(device) and plan.mode(device) not in modes:
            problems.append(f"{device} has no power mode {plan.mode(device)!r} "
                            f"(its modes: {', '.join(['max', *modes])})")
    if plan.kind == "dp" and cfg.batch_size < n:
        problems.append(f"batch_size {cfg.batch_size} has fewer rows than the {n} data-parallel devices")
    if plan.kind == "tp":
        if cfg.heads % n:
            problems.append(f"{cfg.heads} attention heads are not divisible by the tensor-parallel degree {n}")
        if cfg.ffn_dim % n:
            problems.append(f"MLP width {cfg.ffn_dim} is not divisible by the tensor-parallel degree {n}")
    if plan.kind == "sp" and cfg.seq_len % n:
        problems.append(f"seq_len {cfg.seq_len} is not divisible by the sequence-parallel degree {n}")
    if plan.kind == "pp":
        if n > cfg.layers:
            problems.append(f"{n} pipeline stages are more than the model's {cfg.layers} layers")
        micro = pipeline_microbatches(cfg, n)
        if micro is None:
            problems.append(f"batch_size {cfg.batch_size} cannot be split into between {n} and {2 * n} "
                            f"equal micro-batches for a pipeline of {n} stages")
        elif micro < n:
            problems.append(f"{micro} micro-batches cannot fill a pipeline of {n} stages")
    if plan.kind == HYBRID:
        problems += _hybrid_problems(plan, scenario)
    if not problems:
        for estimate in estimate_memory(plan, scenario):
            if not estimate.fits:
                problems.append(f"the model does not fit {estimate.device}: it needs about "
                                f"{estimate.need_mb:.0f} MiB, the device has {estimate.have_mb:.0f} MiB")
    return problems


def _hybrid_problems(plan: Plan, scenario: Scenario) -> list[str]:
    cfg, stages = scenario.model, len(plan.group_sizes)
    if plan.stage_layers and sum(plan.stage_layers) != cfg.layers:
        return [f"the stages' blocks add up to {sum(plan.stage_layers)}, the model has {cfg.layers}"]
    if stages > cfg.layers:
        return [f"{stages} pipeline stages are more than the model's {cfg.layers} layers"]
    micro = hybrid_microbatches(plan, cfg.batch_size)
    widest = max(plan.group_sizes)
    if cfg.batch_size // micro < widest:
        return [f"{micro} micro-batches of batch_size {cfg.batch_size} leave fewer rows than the "
                f"{widest} devices of the widest stage"]
    return []


def check_plan(plan: Plan, scenario: Scenario) -> None:
    problems = plan_problems(plan, scenario)
    if problems:
        raise PlanError(f"plan {plan} cannot run: " + "; ".join(problems))
