"""A policy exported by `edgetrain train` as ONNX, run with onnxruntime alone: a device needs neither
torch nor stable-baselines3 to schedule (CI checks that this module imports neither)."""

from __future__ import annotations

import numpy as np


class OnnxPolicy:
    def __init__(self, path: str):
        import onnxruntime
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def predict(self, observation: np.ndarray, action_mask: np.ndarray) -> np.ndarray:
        """The masked greedy action for one observation."""
        obs = np.asarray(observation, dtype=np.float32).reshape(1, -1)
        mask = np.asarray(action_mask, dtype=bool).reshape(1, -1)
        return self.session.run(["action"], {"observation": obs, "action_mask": mask})[0][0]
