"""Paired comparisons for the benchmarks: per-episode ratios and differences of two contenders run on
the same seeds, and a percentile bootstrap of their mean (episodes resampled with replacement, by a
fixed-seed numpy Generator, so that the same figures give the same interval). Pure functions: numpy only.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

RESAMPLES = 10_000
CONFIDENCE = 0.95
SEED = 0
MIN_PAIRS = 5
"""Fewer paired episodes than this give no verdict: a bootstrap of one or two episodes is as narrow as
their spread, which says nothing about the next episode."""


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The episodes where both figures are finite and b is positive (a ratio a/b exists), as two arrays.
    An episode that trained nothing has a NaN cost per sample and is left out of the pair."""
    if len(a) != len(b):
        raise ValueError(f"paired figures need the same episodes: {len(a)} vs {len(b)}")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (y > 0)
    return x[keep], y[keep]


def bootstrap_mean_ci(values: Sequence[float], resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
                      seed: int = SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`: `resamples` resamples of as many values,
    drawn with replacement by `np.random.default_rng(seed)`. (nan, nan) for no values."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return float("nan"), float("nan")
    if not 0.0 < confidence < 1.0 or resamples < 1:
        raise ValueError("confidence must lie in (0, 1) and resamples be at least 1")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // data.size)  # bounded memory for long evaluations
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        means[start:stop] = data[rng.integers(0, data.size, size=(stop - start, data.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    # A resampled mean of equal values may differ from them in the last bit; keep the interval inside
    # the values' range so that identical costs give exactly [1, 1].
    low, high = np.clip([low, high], data.min(), data.max())
    return float(low), float(high)


def where_is_one(low: float, high: float) -> str:
    """'below' (the whole interval under 1), 'above' (over 1), 'contains' or 'undetermined' (no interval)."""
    if math.isnan(low) or math.isnan(high):
        return "undetermined"
    if high < 1.0:
        return "below"
    if low > 1.0:
        return "above"
    return "contains"


def compare_paired(mine: Sequence[float], other: Sequence[float], resamples: int = RESAMPLES,
                   confidence: float = CONFIDENCE, seed: int = SEED) -> dict:
    """`mine` against `other`, episode by episode (the same seeds): the ratios mine/other and the
    differences mine - other, the mean of each with its bootstrap interval, and where 1 lies in the
    ratio's interval ('undetermined' with fewer than MIN_PAIRS usable episodes)."""
    x, y = paired(mine, other)
    ratios, diffs = x / y, x - y
    ratio_ci = bootstrap_mean_ci(ratios, resamples, confidence, seed)
    diff_ci = bootstrap_mean_ci(diffs, resamples, confidence, seed)
    enough = ratios.size >= MIN_PAIRS
    return {
        "episodes_paired": int(ratios.size),
        "episodes_left_out": len(mine) - int(ratios.size),
        "confidence": confidence,
        "per_episode_ratio": [float(r) for r in ratios],
        "mean_ratio": float(ratios.mean()) if ratios.size else float("nan"),
        "mean_ratio_ci": list(ratio_ci),
        "mean_difference": float(diffs.mean()) if diffs.size else float("nan"),
        "mean_difference_ci": list(diff_ci),
        "episodes_lower": int((ratios < 1.0).sum()),
        "episodes_equal": int((ratios == 1.0).sum()),
        "episodes_higher": int((ratios > 1.0).sum()),
        "one_in_ratio_ci": where_is_one(*ratio_ci) if enough else "undetermined",
    }
