"""The live side of EdgeTrain-v0: every interval trains for real, on the emulated testbed (backend
"mininet") or on real devices listed in a cluster file (backend "cluster"). The fleet stays up across
episodes and comes down on close()."""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgetrain.core.errors import RunError
from edgetrain.envs.dynamics import Dynamics, JobRules
from edgetrain.envs.slots import SlotFleet
from edgetrain.envs.state import EpisodeState, IntervalOutcome, ResolvedPlan, World
from edgetrain.fleet.backends import open_backend
from edgetrain.fleet.measure import warm_up_devices
from edgetrain.runtime.coordinator.job import Job, PlanSession
from edgetrain.runtime.coordinator.recovery import run_with_recovery


class LiveDynamics(Dynamics):
    measured = True

    def __init__(self, rules: JobRules, backend: str = "mininet", cluster=None, time_scale: float = 1.0,
                 run_dir: Optional[str] = None, progress: Callable[[str], None] = lambda line: None,
                 busy_devices: tuple = ()):
        self.rules = rules
        self.busy_devices = tuple(busy_devices)
        self.backend_name = backend
        self.cluster = cluster
        self.time_scale = time_scale
        self.requested_run_dir = run_dir
        self.progress = progress
        self._stack: Optional[contextlib.ExitStack] = None
        self.episode = 0
        self.checkpoint: Optional[str] = None
        self.session = PlanSession()
        """The plan that ran last, its shards kept: a decision that keeps it goes on in them."""
        self.keep_plans = True
        """False: every decision starts its plan afresh (as before plans were kept; for comparison)."""

    def _open(self, fleet: SlotFleet, seed: int) -> None:
        """Bring the fleet up once, on the first episode; it serves every later one."""
        self._stack = contextlib.ExitStack()
        run_dir = self.requested_run_dir
        if run_dir is None:
            run_dir = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="edgetrain-env-"))
        self.run_dir = Path(run_dir)
        try:
            self.backend = self._stack.enter_context(
                open_backend(self.backend_name, fleet.scenario, self.run_dir, seed=seed, time_scale=self.time_scale,
                             progress=self.progress, cluster=self.cluster, busy_devices=self.busy_devices))
            # Every device warm, its standby for a recovery included, before the first decision's steps.
            online = [d for d, up in zip(fleet.names, self.backend.online(list(fleet.names))) if up]
            warm_up_devices(self.backend, fleet.scenario, standby=True, devices=online, best_effort=True)
        except BaseException:
            self._stack.close()
            self._stack = None
            raise

    def begin_episode(self, fleet: SlotFleet, rng: np.random.Generator) -> World:
        if self._stack is None:
            self._open(fleet, seed=int(rng.integers(2 ** 31)))
        self.fleet = fleet
        self.episode += 1  # a new job: fresh weights, its own checkpoint file
        self.checkpoint = None
        self.session.release()
        self._seen = self._available_list()  # availability as seen at decisions: the testbed keeps no history
        self._since = [0.0] * fleet.n
        return self._world(0.0)

    @property
    def episode_checkpoint(self) -> Path:
        return self.run_dir / f"episode{self.episode}.pt"

    def _available_list(self) -> list[bool]:
        """Devices a plan can take now: online, and warm. A device that has just come back counts once its
        worker has a warm process (`RemoteLauncher.ready_devices`): until then a plan with it would wait
        for its import (seconds to tens of seconds), and the warm devices train meanwhile."""
        names = list(self.fleet.names)
        online = self.backend.online(names)
        ready = set(self.backend.ready([n for n, up in zip(names, online) if up]))
        return [up and n in ready for n, up in zip(names, online)]

    def _world(self, t: float) -> World:
        online = self._available_list()
        for i, up in enumerate(online):
            if up != self._seen[i]:
                self._seen[i], self._since[i] = up, t
        battery = tuple(1.0 if pct is None else pct / 100.0 for pct in self.backend.battery(list(self.fleet.names)))
        return World(t, sum(1 << i for i, up in enumerate(online) if up),
                     tuple(t - self._since[i] if up else 0.0 for i, up in enumerate(online)), battery)

    def before_decision(self, world: World, timeout_s: float = 600.0) -> tuple[World, float]:
        """Block until some device is available; the world as the plan starts."""
        started = time.monotonic()
        while not any(self._available_list()):
            if time.monotonic() - started > timeout_s:
                raise RunError(f"no device of {self.fleet.scenario.name} has been available for {timeout_s:.0f} s")
            time.sleep(0.5)
        waited = time.monotonic() - started
        return self._world(world.t + waited), waited

    def run(self, resolved: ResolvedPlan, state: EpisodeState, rng: np.random.Generator) -> IntervalOutcome:
        """Train the plan for real from the job's last checkpoint, recovering from lost devices
        (replanning on the ones left). The last interval stops at the target."""
        rules = self.rules
        remaining = -(-(rules.target_samples - state.samples) // rules.batch_size)
        target = str(self.episode_checkpoint)
        job = Job(scenario=self.fleet.scenario, plan=resolved.plan, steps=min(rules.decision_steps, remaining),
                  run_dir=self.run_dir / f"episode{self.episode}", resume=self.checkpoint, checkpoint_out=target,
                  checkpoint_every=rules.checkpoint_every, device_cores=self.backend.device_cores,
                  socket_ifnames=self.backend.socket_ifnames,
                  hardware_meter=self.backend.facts.get("backend") == "cluster", hold=self.keep_plans)
        run = run_with_recovery(job, self.backend.launcher, progress=self.progress, session=self.session).to_dict()
        self.checkpoint = target
        time_s = run["total"]["wall_s"]  # startup, switch and recovery included
        if job.steps == remaining:
            # The job's last interval: its shards end, which they do once the final checkpoint (written
            # after they said `held`) is here; that wait is part of the job.
            released = time.perf_counter()
            self.session.release()
            time_s += time.perf_counter() - released
        failures = len(run["recoveries"])
        return IntervalOutcome(run["plans"][-1]["plan"], failures,
                               state.plan is None or resolved.plan != state.plan.plan, time_s,
                               run["total"]["energy_j"], len(run["steps"]) * rules.batch_size,
                               len(run["lost_steps"]), self._world(state.world.t + time_s), measured=run)

    def close(self) -> None:
        if self._stack is not None:
            self.session.release()
            self._stack.close()
            self._stack = None
