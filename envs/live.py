"""The live side of EdgeTrain-v0: plans run for real, on the emulated testbed (backend "mininet") or on
real devices listed in a cluster file (backend "cluster"). The fleet stays up across episodes and comes
down on close()."""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from edgetrain.backends import open_backend
from edgetrain.config import Scenario
from edgetrain.errors import RunError
from edgetrain.plans import Plan
from runtime.coordinator import Job
from runtime.recovery import run_with_recovery


class LiveFleet:
    def __init__(self, scenario: Scenario, backend: str = "mininet", cluster=None, seed: int = 0,
                 time_scale: float = 1.0, run_dir: Optional[str] = None, checkpoint_every: int = 5,
                 progress: Callable[[str], None] = lambda line: None):
        self.scenario = scenario
        self.names = scenario.device_names
        self.checkpoint_every = checkpoint_every
        self._stack = contextlib.ExitStack()
        if run_dir is None:
            run_dir = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="edgetrain-env-"))
        self.run_dir = Path(run_dir)
        self.progress = progress
        try:
            self.backend = self._stack.enter_context(
                open_backend(backend, scenario, self.run_dir, seed=seed, time_scale=time_scale, progress=progress,
                             cluster=cluster))
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
        return self.backend.online(self.names)

    def battery(self) -> list[float]:
        return [1.0 if pct is None else pct / 100.0 for pct in self.backend.battery(self.names)]

    def wait_for_devices(self, timeout_s: float = 600.0) -> float:
        """Block until some device is available; returns the seconds waited."""
        started = time.monotonic()
        while not any(self.available()):
            if time.monotonic() - started > timeout_s:
                raise RunError(f"no device of {self.scenario.name} has been available for {timeout_s:.0f} s")
            time.sleep(0.5)
        return time.monotonic() - started

    @property
    def episode_checkpoint(self) -> Path:
        return self.run_dir / f"episode{self.episode}.pt"

    def train(self, plan: Plan, steps: int) -> dict:
        """Train `steps` steps of `plan` for real, from the episode's last checkpoint, recovering from lost
        devices (replanning on the ones left); returns the run's metrics."""
        target = str(self.episode_checkpoint)
        job = Job(scenario=self.scenario, plan=plan, steps=steps, run_dir=self.run_dir / f"episode{self.episode}",
                  resume=self.checkpoint, checkpoint_out=target, checkpoint_every=self.checkpoint_every,
                  device_cores=self.backend.device_cores, socket_ifnames=self.backend.socket_ifnames,
                  hardware_meter=self.backend.facts.get("backend") == "cluster")
        metrics = run_with_recovery(job, self.backend.launcher, progress=self.progress)
        self.checkpoint = target
        return metrics.to_dict()

    def close(self) -> None:
        self._stack.close()
