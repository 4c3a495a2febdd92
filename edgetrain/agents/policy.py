"""Load a trained policy, whichever form it was saved in, behind one protocol:
`act(observation, action_mask) -> action` (SB3's `predict`, deterministic, masked)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edgetrain.core.errors import UserError

ActFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def load_policy(path: str) -> ActFn:
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
        return onnx.predict
    from sb3_contrib import MaskablePPO
    try:
        model = MaskablePPO.load(str(file), device="cpu")
    except Exception as exc:  # SB3 raises zipfile, pickle-free JSON and key errors for a foreign file
        raise UserError(f"policy {path}: not a MaskablePPO policy saved by `edgetrain train` "
                        f"({type(exc).__name__})") from None

    def act(observation: np.ndarray, mask: np.ndarray) -> np.ndarray:
        action, _ = model.predict(observation, action_masks=mask, deterministic=True)
        return action

    return act
