"""Load a trained policy, whichever form it was saved in, behind one protocol:
`act(observation, action_mask) -> action` (SB3's `predict`, deterministic, masked), and refuse with
one sentence a policy saved for another observation or action layout than this EdgeTrain-v0's."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edgetrain.core.errors import UserError

ActFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class LoadedPolicy:
    """A policy and the layout it was trained for: observation features and action-mask entries."""

    def __init__(self, path: str, act: ActFn, observation_size: int, mask_size: int):
        self.path, self.act = path, act
        self.observation_size, self.mask_size = observation_size, mask_size

    def __call__(self, observation: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.act(observation, mask)

    def check_fits(self, observation_size: int, mask_size: int) -> None:
        if (self.observation_size, self.mask_size) != (observation_size, mask_size):
            raise UserError(f"policy {self.path} was trained for observations of {self.observation_size} features "
                            f"and {self.mask_size} action-mask entries, and EdgeTrain-v0 now has {observation_size} "
                            f"and {mask_size} (it was saved by another version of edgetrain): train it again "
                            "with `edgetrain train`")


def load_policy(path: str) -> LoadedPolicy:
    """An SB3 zip (needs stable-baselines3) or its ONNX export (onnxruntime alone)."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"policy {path}: no such file (a policy.zip or policy.onnx from `edgetrain train`)")
    if file.suffix == ".onnx":
        from edgetrain.agents.onnx_policy import OnnxPolicy
        try:
            onnx = OnnxPolicy(str(file))
        except Exception as exc:  # onnxruntime raises its own exception types for a bad model file
            raise UserError(f"policy {path}: not a loadable ONNX model ({type(exc).__name__})") from None
        return LoadedPolicy(path, onnx.predict, *onnx.layout())
    from sb3_contrib import MaskablePPO
    try:
        model = MaskablePPO.load(str(file), device="cpu")
    except Exception as exc:  # SB3 raises zipfile, pickle-free JSON and key errors for a foreign file
        raise UserError(f"policy {path}: not a MaskablePPO policy saved by `edgetrain train` "
                        f"({type(exc).__name__})") from None

    def act(observation: np.ndarray, mask: np.ndarray) -> np.ndarray:
        action, _ = model.predict(observation, action_masks=mask, deterministic=True)
        return action

    space = model.action_space
    mask_size = int(space.n) if hasattr(space, "n") else int(np.sum(space.nvec))
    return LoadedPolicy(path, act, int(np.prod(model.observation_space.shape)), mask_size)
