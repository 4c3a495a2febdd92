"""How much memory each device of a plan needs, estimated from the model config alone.

The one memory model: feasibility refuses plans with it, the cost model and `edgetrain predict` report
it. A shard process's measured baseline, plus 16 bytes per parameter a device holds (fp32 weight,
gradient and two AdamW moments), plus the activations it keeps for the backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgetrain.core.catalog import get_profile
from edgetrain.core.config import ModelConfig, Scenario
from edgetrain.core.plans import HYBRID, Plan
from edgetrain.core.sizing import (
    count_parameters,
    hybrid_layer_ranges,
    hybrid_rows,
    pipeline_microbatches,
    stage_layer_ranges,
)

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
            in_flight = min(n - stage, micro)  # 1F1B keeps at most this many micro-batches' activations
            needs.append(_stage_bytes(cfg, len(layers), stage == 0, stage == n - 1, in_flight * (b // micro) * t))
    elif plan.kind == HYBRID:
        ranges, stages = hybrid_layer_ranges(plan, L), len(plan.group_sizes)
        for stage, group in enumerate(plan.stages):
            for member in range(len(group)):
                # GPipe: every micro-batch's activations are kept until the backward passes begin.
                rows = sum(len(r) for r in hybrid_rows(plan, b, stage, member))
                needs.append(_stage_bytes(cfg, len(ranges[stage]), stage == 0, stage == stages - 1, rows * t))
    return [MemoryEstimate(device, PROCESS_BASELINE_MB + need / 2 ** 20, device_memory_mb(scenario, device))
            for device, need in zip(plan.devices, needs)]


def _stage_bytes(cfg: ModelConfig, blocks: int, first: bool, last: bool, tokens: float) -> float:
    """Bytes one pipeline stage's device holds besides its process: the stage's parameters (the first
    also the embeddings, the last the norm and head) with gradients and AdamW state, and the
    activations of `tokens` tokens (the last stage also the logits and their gradient)."""
    counts = count_parameters(cfg)
    params = blocks * counts["block"] + (counts["embeddings"] if first else 0) + (counts["head"] if last else 0)
    floats_per_token = blocks * _activation_floats_per_token(cfg) + (2 * cfg.vocab_size if last else 0)
    return params * TRAINING_BYTES_PER_PARAM + tokens * floats_per_token * BYTES_PER_FLOAT


def hybrid_stage_mb(cfg: ModelConfig, blocks: int, first: bool, last: bool, rows: float) -> float:
    """MiB one member of a hybrid stage needs when it works on `rows` rows of every step (GPipe keeps
    every micro-batch's activations until the backward passes begin). The planner calls it for stages
    it is still choosing; `estimate_memory` counts chosen plans the same way."""
    return PROCESS_BASELINE_MB + _stage_bytes(cfg, blocks, first, last, rows * cfg.seq_len) / 2 ** 20
