"""Sizes of the model and of its parts under each parallelism, computed from the config alone.

Pure arithmetic shared by the runtime (which builds and splits the model), the feasibility and memory
checks and the cost model (which must not import torch): parameter counts, how blocks are cut into
pipeline stages, how a batch is cut into micro-batches.
"""

from __future__ import annotations

from typing import Optional

from edgetrain.core.config import ModelConfig


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


def stage_of_key(key: str, cfg: ModelConfig, stages: int) -> int:
    """Which pipeline stage holds a parameter of the one-device model."""
    if key.startswith(("tok_embeddings.", "pos_embeddings.")):
        return 0
    if key.startswith(("norm.", "output.")):
        return stages - 1
    layer = int(key.split(".")[1])
    for stage, layer_range in enumerate(stage_layer_ranges(cfg.layers, stages)):
        if layer in layer_range:
            return stage
    raise ValueError(f"no stage holds {key}")


def default_microbatches(batch_size: int, stages: int) -> Optional[int]:
    """The largest divisor of batch_size in [stages, 2 * stages]: enough micro-batches to fill the
    1F1B pipeline, few enough that each still does useful work. None when there is none."""
    candidates = [m for m in range(stages, 2 * stages + 1) if batch_size % m == 0]
    return max(candidates) if candidates else None


def pipeline_microbatches(cfg: ModelConfig, stages: int) -> Optional[int]:
    """The micro-batches a pipeline of `stages` runs: the scenario's choice, else the default."""
    return cfg.microbatches or default_microbatches(cfg.batch_size, stages)
