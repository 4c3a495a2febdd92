"""The action layout of EdgeTrain-v0 and the helpers every consumer of it shares.

An action is the index of one of the plans offered at this decision (`Discrete(MAX_CANDIDATES)`;
`edgetrain.envs.candidates` says which plans are offered and in which order). The mask
(`EdgeTrainEnv.action_masks()`) allows the indices that hold an offer.
"""

from __future__ import annotations

import numpy as np

from edgetrain.envs.candidates import MAX_CANDIDATES

MAX_DEVICES = 16
"""The largest fleet the env serves (beyond 8 available devices, plans are built from device orderings
rather than every subset: `SlotFleet.candidates`)."""


def random_valid_action(mask: np.ndarray, rng: np.random.Generator) -> int:
    """A uniformly random offered plan."""
    allowed = np.flatnonzero(mask)
    return int(allowed[min(int(rng.random() * len(allowed)), len(allowed) - 1)])


__all__ = ["MAX_CANDIDATES", "MAX_DEVICES", "random_valid_action"]
