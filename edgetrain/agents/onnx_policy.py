"""A policy exported by `edgetrain train` as ONNX, run with onnxruntime alone: a device needs neither
torch nor stable-baselines3 to schedule (CI checks that this module imports neither)."""

from __future__ import annotations

import numpy as np


class OnnxPolicy:
    def __init__(self, path: str):
        import onnxruntime
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def layout(self) -> tuple[int, int]:
        """(observation features, action-mask entries) the exported policy takes."""
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        return int(inputs["observation"][1]), int(inputs["action_mask"][1])

    def predict(self, observation: np.ndarray, action_mask: np.ndarray) -> np.ndarray:
        """The masked greedy action for one observation."""
        obs = np.asarray(observation, dtype=np.float32).reshape(1, -1)
        mask = np.asarray(action_mask, dtype=bool).reshape(1, -1)
        return self.session.run(["action"], {"observation": obs, "action_mask": mask})[0][0]
