"""Sizes of the model and of its parts under each parallelism, computed from the config alone.

Pure arithmetic shared by the runtime (which builds and splits the model), the feasibility and memory
checks and the cost model (which must not import torch): parameter counts, how blocks are cut into
pipeline stages, how a batch is cut into micro-batches.
"""

from __future__ import annotations

from typing import Optional

from edgetrain.core.config import ModelConfig
from edgetrain.core.plans import Plan


def count_parameters(cfg: ModelConfig) -> dict[str, int]:
    """Parameter counts of each part of the model, without building it."""
    d, f, v = cfg.d_model, cfg.ffn_dim, cfg.vocab_size
    block = 4 * d * d + (d * f + f) + (f * d + d) + 2 * (2 * d)
    return {
        "embeddings": v * d + cfg.seq_len * d,
        "block": block,
        "head": 2 * d + v * d,
        "total": v * d + cfg.seq_len * d + cfg.layers * block + 2 * d + v * d,
    }


def split_evenly(total: int, parts: int) -> list[range]:
    """Contiguous ranges as equal as they can be; the first ones take the remainder."""
    base, extra = divmod(total, parts)
    ranges, start = [], 0
    for part in range(parts):
        size = base + (1 if part < extra else 0)
        ranges.append(range(start, start + size))
        start += size
    return ranges


def stage_layer_ranges(layers: int, stages: int) -> list[range]:
    """Blocks per pipeline stage, balanced by count (earlier stages take the remainder)."""
    return split_evenly(layers, stages)


def stage_of_key(key: str, layer_ranges: list[range]) -> int:
    """Which pipeline stage holds a parameter of the one-device model, given each stage's blocks."""
    if key.startswith(("tok_embeddings.", "pos_embeddings.")):
        return 0
    if key.startswith(("norm.", "output.")):
        return len(layer_ranges) - 1
    layer = int(key.split(".")[1])
    for stage, layer_range in enumerate(layer_ranges):
        if layer in layer_range:
            return stage
    raise ValueError(f"no stage holds {key}")


def hybrid_layer_ranges(plan: Plan, layers: int) -> list[range]:
    """Blocks of each stage of a hybrid plan: as the plan allots them, else balanced by count."""
    if not plan.stage_layers:
        return stage_layer_ranges(layers, len(plan.group_sizes))
    ranges, start = [], 0
    for count in plan.stage_layers:
        ranges.append(range(start, start + count))
        start += count
    return ranges


def hybrid_microbatches(plan: Plan, batch_size: int) -> int:
    """The plan's micro-batch count, else twice the stage count (a GPipe schedule's bubble is
    (stages - 1) / (micro-batches + stages - 1)) as long as every member of the largest group still
    gets a row of each micro-batch."""
    if plan.microbatches:
        return plan.microbatches
    return max(1, min(2 * len(plan.group_sizes), batch_size // max(plan.group_sizes)))


def hybrid_rows(plan: Plan, batch_size: int, stage: int, member: int) -> list[range]:
    """The batch rows one member of a stage group works on, one range per micro-batch: micro-batches
    cut the batch into contiguous runs, each cut again among the stage's group."""
    rows = []
    for micro in split_evenly(batch_size, hybrid_microbatches(plan, batch_size)):
        part = split_evenly(len(micro), plan.group_sizes[stage])[member]
        rows.append(range(micro.start + part.start, micro.start + part.stop))
    return rows


def default_microbatches(batch_size: int, stages: int) -> Optional[int]:
    """The largest divisor of batch_size in [stages, 2 * stages]: enough micro-batches to fill the
    1F1B pipeline, few enough that each still does useful work. None when there is none."""
    candidates = [m for m in range(stages, 2 * stages + 1) if batch_size % m == 0]
    return max(candidates) if candidates else None


def pipeline_microbatches(cfg: ModelConfig, stages: int) -> Optional[int]:
    """The micro-batches a pipeline of `stages` runs: the scenario's choice, else the default."""
    return cfg.microbatches or default_microbatches(cfg.batch_size, stages)
