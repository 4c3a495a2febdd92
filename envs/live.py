"""The live side of EdgeTrain-v0 (backend "mininet"): plans run for real on the emulated testbed, which
stays up across episodes and comes down on close()."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Optional

from edgetrain.backends import open_backend
from edgetrain.config import Scenario
from edgetrain.plans import Plan
from runtime.coordinator import Job
from runtime.recovery import run_with_recovery


class LiveTestbed:
    def __init__(self, scenario: Scenario, seed: int = 0, time_scale: float = 1.0, run_dir: Optional[str] = None,
                 progress=lambda line: None):
        self.scenario = scenario
        self._stack = contextlib.ExitStack()
        if run_dir is None:
            run_dir = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="edgetrain-env-"))
        self.run_dir = Path(run_dir)
        self.progress = progress
        try:
            self.backend = self._stack.enter_context(
                open_backend("mininet", scenario, self.run_dir, seed=seed, time_scale=time_scale, progress=progress))
        except BaseException:
            self._stack.close()
            raise
        self.episode = 0
        self.checkpoint: Optional[str] = None

    def new_episode(self) -> None:
        """A new training job: from fresh weights, with its own checkpoint file."""
        self.episode += 1
        self.checkpoint = None

    def available(self) -> list[bool]:
        online = self.backend.testbed.online
        return [online[name] for name in self.scenario.device_names]

    def battery(self) -> list[float]:
        pct = self.backend.testbed.battery_pct
        return [pct[name] / 100.0 if name in pct else 1.0 for name in self.scenario.device_names]

    def train(self, plan: Plan, steps: int) -> dict:
        """Train `steps` steps of `plan` for real, from the episode's last checkpoint, recovering from lost
        devices; returns the run's metrics."""
        target = str(self.run_dir / f"episode{self.episode}.pt")
        job = Job(scenario=self.scenario, plan=plan, steps=steps, run_dir=self.run_dir / f"episode{self.episode}",
                  resume=self.checkpoint, checkpoint_out=target, checkpoint_every=5,
                  device_cores=self.backend.device_cores, socket_ifnames=self.backend.socket_ifnames)
        metrics = run_with_recovery(job, self.backend.launcher, progress=self.progress)
        self.checkpoint = target
        return metrics.to_dict()

    def close(self) -> None:
        self._stack.close()
