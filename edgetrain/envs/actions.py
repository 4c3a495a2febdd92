"""The action layout of EdgeTrain-v0 and the helpers every consumer of it shares.

An action is `[kind, take_0, ..., take_7]`: a plan kind (an index of PLAN_KINDS) and, per device slot,
whether that device takes part. A mask (`EdgeTrainEnv.action_masks()`) is the MultiDiscrete layout
MaskablePPO expects: the allowed kinds, then two entries (leave out, take) per slot.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from edgetrain.core.plans import PLAN_KINDS

MAX_DEVICES = 8
KINDS = len(PLAN_KINDS)
ACTION_NVEC = [KINDS] + [2] * MAX_DEVICES


def action_for(kind: str, slots: Iterable[int]) -> np.ndarray:
    """The action that asks for plan `kind` on the devices in these slots."""
    action = np.zeros(1 + MAX_DEVICES, dtype=np.int64)
    action[0] = PLAN_KINDS.index(kind)
    for slot in slots:
        action[1 + slot] = 1
    return action


def random_valid_action(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random action that the mask allows: an allowed kind, and per slot a choice among the
    allowed values (a slot whose device is unavailable is always left out)."""
    kinds = np.flatnonzero(mask[:KINDS])
    per_slot = mask[KINDS:].reshape(MAX_DEVICES, 2)
    draws = rng.random(1 + MAX_DEVICES)
    take = np.where(per_slot[:, 0] & per_slot[:, 1], draws[1:] < 0.5, per_slot[:, 1])
    action = np.empty(1 + MAX_DEVICES, dtype=np.int64)
    action[0] = kinds[min(int(draws[0] * len(kinds)), len(kinds) - 1)]
    action[1:] = take
    return action
