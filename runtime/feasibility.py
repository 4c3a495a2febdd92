"""Whether a plan can run at all on its devices, decided before any process starts.

Checks the divisibility each parallelism needs and whether each device's share of the model, its
optimizer state and its activations fits in that device's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgetrain.config import ModelConfig, Scenario
from edgetrain.errors import PlanError
from edgetrain.plans import Plan
from edgetrain.profiles import get_profile
from runtime.model import count_parameters
from runtime.parallel import default_microbatches, stage_layer_ranges

# Resident memory of a shard process before training: Python, torch, torch.distributed and the
# default corpus. Measured here as 312 MiB with psutil after those imports (README, "Memory").
PROCESS_BASELINE_MB = 320
BYTES_PER_FLOAT = 4
# fp32 parameter + gradient + the two AdamW moments.
TRAINING_BYTES_PER_PARAM = 4 * BYTES_PER_FLOAT


@dataclass(frozen=True)
class MemoryEstimate:
    device: str
    need_mb: float
    have_mb: float

    @property
    def fits(self) -> bool:
        return self.need_mb <= self.have_mb


def device_memory_mb(scenario: Scenario, device: str) -> float:
    config = scenario.device(device)
    return config.memory_mb if config.memory_mb is not None else get_profile(config.profile).memory_mb.value


def pipeline_microbatches(cfg: ModelConfig, stages: int) -> int | None:
    return cfg.microbatches or default_microbatches(cfg.batch_size, stages)


def _activation_floats_per_token(cfg: ModelConfig, shard: int = 1) -> float:
    """Floats autograd keeps per token of one block: norms, residuals and projections (d_model each),
    the MLP hidden and its activation, and the attention weights of every head over the sequence.
    `shard` divides the parts tensor parallelism splits (heads and MLP columns)."""
    d, f, h, t = cfg.d_model, cfg.ffn_dim, cfg.heads, cfg.seq_len
    return 5 * d + (5 * d + 2 * f + h * t) / shard


def estimate_memory(plan: Plan, scenario: Scenario) -> list[MemoryEstimate]:
    cfg = scenario.model
    counts = count_parameters(cfg)
    n, b, t, v, L = plan.degree, cfg.batch_size, cfg.seq_len, cfg.vocab_size, cfg.layers
    head_floats = 2 * v  # logits and their gradient, per token
    needs: list[float] = []
    if plan.kind in ("local", "dp", "sp"):
        tokens = -(-b // n) * t if plan.kind == "dp" else b * t / n  # dp: the largest slice
        floats = tokens * (L * _activation_floats_per_token(cfg) + head_floats)
        if plan.kind == "sp":  # gathered keys and values of the whole sequence
            floats += L * 2 * cfg.d_model * b * t
        params = counts["total"]
        needs = [params * TRAINING_BYTES_PER_PARAM + floats * BYTES_PER_FLOAT] * n
    elif plan.kind == "tp":
        sharded_block = 4 * cfg.d_model ** 2 + 2 * cfg.d_model * cfg.ffn_dim + cfg.ffn_dim
        params = counts["total"] - L * sharded_block * (1 - 1 / n)
        floats = b * t * (L * _activation_floats_per_token(cfg, shard=n) + head_floats)
        needs = [params * TRAINING_BYTES_PER_PARAM + floats * BYTES_PER_FLOAT] * n
    elif plan.kind == "pp":
        micro = pipeline_microbatches(cfg, n) or n
        for stage, layers in enumerate(stage_layer_ranges(L, n)):
            params = len(layers) * counts["block"]
            floats_per_token = len(layers) * _activation_floats_per_token(cfg)
            if stage == 0:
                params += counts["embeddings"]
            if stage == n - 1:
                params += counts["head"]
                floats_per_token += head_floats
            in_flight = min(n - stage, micro)  # 1F1B keeps at most this many micro-batches' activations
            floats = in_flight * (b // micro) * t * floats_per_token
            needs.append(params * TRAINING_BYTES_PER_PARAM + floats * BYTES_PER_FLOAT)
    return [MemoryEstimate(device, PROCESS_BASELINE_MB + need / 2 ** 20, device_memory_mb(scenario, device))
            for device, need in zip(plan.devices, needs)]


def plan_problems(plan: Plan, scenario: Scenario) -> list[str]:
    """Every reason this plan cannot run, as sentences; empty when it can."""
    cfg, n = scenario.model, plan.degree
    problems = []
    unknown = [d for d in plan.devices if d not in scenario.device_names]
    if unknown:
        return [f"device {unknown[0]!r} is not in scenario {scenario.name} "
                f"(devices: {', '.join(scenario.device_names)})"]
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
    if not problems:
        for estimate in estimate_memory(plan, scenario):
            if not estimate.fits:
                problems.append(f"the model does not fit {estimate.device}: it needs about "
                                f"{estimate.need_mb:.0f} MiB, the device has {estimate.have_mb:.0f} MiB")
    return problems


def check_plan(plan: Plan, scenario: Scenario) -> None:
    problems = plan_problems(plan, scenario)
    if problems:
        raise PlanError(f"plan {plan} cannot run: " + "; ".join(problems))


def enumerate_plans(devices: list[str], max_devices: int) -> list[Plan]:
    """Every plan kind on every subset of up to max_devices devices, each subset in scenario order."""
    from itertools import combinations
    plans = []
    for size in range(1, min(max_devices, len(devices)) + 1):
        for group in combinations(devices, size):
            kinds = ("local",) if size == 1 else ("dp", "pp", "tp", "sp")
            plans.extend(Plan(kind, group) for kind in kinds)
    return plans
