"""EdgeTrain-v0: choose, again and again, which devices train and with which parallelism."""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from edgetrain.core.calibration import default_calibration_path, load_calibration
from edgetrain.core.config import Availability, Scenario
from edgetrain.core.objective import EnergyTimeCost
from edgetrain.core.plans import PLAN_KINDS
from edgetrain.core.scenario import load_scenario
from edgetrain.envs.actions import ACTION_NVEC, KINDS, MAX_DEVICES, action_for
from edgetrain.envs.costmodel import CostModel
from edgetrain.envs.dynamics import Dynamics, JobRules, SimDynamics
from edgetrain.envs.slots import DEVICE_FEATURES, SlotFleet
from edgetrain.envs.state import EpisodeState, IntervalOutcome, ResolvedPlan

JOB_FEATURES = 7


class EdgeTrainEnv(gym.Env):
    """
    ## Description
    One episode is one training job on a scenario's fleet of edge devices: it ends when the scenario's
    `target_samples` have been trained. At every decision the agent picks a plan (a parallelism kind and
    the devices that take part); the plan then trains for `decision_steps` steps. Devices come and go
    along availability traces sampled from the scenario, and batteries drain.

    ## Action Space
    `MultiDiscrete([5] + [2] * 8)`: the plan kind (0 local, 1 dp, 2 pp, 3 tp, 4 sp) and, per device slot,
    whether that device takes part. Slots beyond the fleet are padding. `action_masks()` (for
    MaskablePPO) allows no unavailable or absent device and no kind that no subset of the available
    devices can run (the runtime's divisibility and memory checks). A combination that still cannot
    run is resolved to the closest plan that can: another kind on the same devices, then fewer devices
    (the slowest dropped first); with no device chosen, the fastest available device alone.

    ## Observation Space
    `Box(0, 1, (8 * 10 + 7,))`, all features normalised to [0, 1]:

    | index | feature |
    |---|---|
    | 10*i + 0 | slot i holds a device |
    | 10*i + 1 | device i is available now |
    | 10*i + 2 | how long it has been in its current state, min(1, s / 1800), for available devices |
    | 10*i + 3 | its speed: fastest device's one-device step time / its own |
    | 10*i + 4 | link bandwidth / 100 Mbit/s (clipped) |
    | 10*i + 5 | memory / 8 GiB (clipped) |
    | 10*i + 6 | idle power / 30 W (clipped) |
    | 10*i + 7 | active power / 30 W (clipped) |
    | 10*i + 8 | battery charge (1 for mains power) |
    | 10*i + 9 | device i is in the current plan |
    | 80 | job progress: samples trained / target |
    | 81..85 | current plan kind, one-hot (all 0 before the first plan) |
    | 86 | the last interval failed |

    ## Rewards
    The negative Zeus energy-time cost of the interval, `eta * energy + (1 - eta) * max_power * time`,
    divided by the samples an interval is meant to train (`decision_steps * batch_size`): per sample when
    nothing goes wrong. It includes the cost of switching plans (restarting the shards) and of failures
    (work lost since the last checkpoint, detection and recovery time). `max_power` is the sum of the
    active power of every device of the scenario (fixed per scenario, also when `vary_fleet` deals an
    episode a sub-fleet: `edgetrain.core.objective`), so rewards of one scenario share one scale. `info` carries the raw energy, time, samples, plan and failures.

    ## Episode End
    Terminates when `target_samples` are trained; truncated by `max_episode_steps` (registration), and
    when no device is left and none will return (the simulator knows; a step then trains nothing).

    ## Arguments
    - `scenario`: a Scenario, or a scenario file / built-in name.
    - `calibration`: a calibration dict or file from `edgetrain calibrate` (calibrates the simulator; the
      one shipped with a built-in scenario by default).
    - `backend`: "sim" (cost model + noise + sampled availability), "mininet" (the live emulated
      testbed: each step trains for real; availability follows the testbed's traces; the network and
      workers stay up across episodes and come down on `close()`; needs root) or "cluster" (real
      devices: `cluster` is a loaded cluster file, edgetrain/cluster.py).
    - `time_scale`: mininet: scenario seconds per real second for availability.
    - `live_dir`: live backends: where runs and checkpoints go (a temporary folder by default);
      `progress`: a function that takes the live runtime's progress lines.
    - `decision_steps`: training steps per decision (default 10).
    - `noise`: relative standard deviation of the simulated time and energy (default 0.05).
    - `switch_s`: seconds to restart shards on a new plan (default 2.0).
    - `checkpoint_every`: steps between checkpoints (default 5, as `edgetrain run`).
    - `vary_fleet`: sim: half the episodes on a random subset of the devices in random slots, with
      varied availability (domain randomisation, so that one policy serves fleets it was not trained on).

    ## Version History
    - v0: initial version. (Rewards of `vary_fleet` episodes on a sub-fleet use the scenario's
      `max_power` since the structure rework; the scenario's own episodes are unchanged.)
    """

    metadata = {"render_modes": []}

    def __init__(self, scenario=None, calibration=None, backend: str = "sim", decision_steps: int = 10,
                 noise: float = 0.05, switch_s: float = 2.0, checkpoint_every: int = 5, time_scale: float = 1.0,
                 cluster=None, live_dir: Optional[str] = None, progress: Optional[Callable[[str], None]] = None,
                 vary_fleet: bool = False):
        if backend not in ("sim", "mininet", "cluster"):
            raise ValueError(f"unknown backend {backend!r} (sim, mininet or cluster)")
        if vary_fleet and backend != "sim":
            raise ValueError("vary_fleet randomises simulated fleets only (backend 'sim')")
        self.scenario: Scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        if len(self.scenario.devices) > MAX_DEVICES:
            raise ValueError(f"EdgeTrain-v0 serves fleets of up to {MAX_DEVICES} devices")
        self.calibration = (calibration if isinstance(calibration, dict)
                            else load_calibration(calibration or default_calibration_path(self.scenario)))
        self.cost = CostModel(self.calibration, self.scenario)
        self.objective = EnergyTimeCost.of(self.scenario)
        self.vary_fleet = vary_fleet
        self.decision_steps = decision_steps
        self.batch = self.scenario.model.batch_size
        self.target = self.scenario.objective.target_samples
        self.interval_samples = decision_steps * self.batch
        self.rules = rules = JobRules(decision_steps, self.batch, self.target, checkpoint_every, switch_s, noise)
        if backend == "sim":
            self.dynamics: Dynamics = SimDynamics(rules)
        else:
            from edgetrain.envs.live import LiveDynamics  # the runtime and torch only when training for real
            self.dynamics = LiveDynamics(rules, backend=backend, cluster=cluster, time_scale=time_scale,
                                         run_dir=live_dir, progress=progress or (lambda line: None))
        self.action_space = spaces.MultiDiscrete(ACTION_NVEC)
        self.observation_space = spaces.Box(0.0, 1.0, (MAX_DEVICES * DEVICE_FEATURES + JOB_FEATURES,),
                                            dtype=np.float32)
        self._fleets: dict[tuple[str, ...], SlotFleet] = {}
        self.fleet = self._fleet_for(self.scenario)
        self.state: Optional[EpisodeState] = None

    # --- the fleet of an episode -------------------------------------------------------------------------
    def _fleet_for(self, scenario: Scenario) -> SlotFleet:
        """What depends only on the devices and their order is kept per fleet (features, plans, masks)."""
        fleet = self._fleets.get(tuple(scenario.device_names))
        if fleet is None:
            fleet = self._fleets[tuple(scenario.device_names)] = SlotFleet(scenario, self.cost)
        return fleet if fleet.scenario is scenario else fleet.for_episode(scenario)

    def _random_fleet(self) -> Scenario:
        """Domain randomisation for training a policy that serves other fleets than the one it learned
        on: half the episodes on the scenario itself, the other half on a random subset (at least two
        devices) of its devices in random slots, with their availability made more or less stable,
        and devices that were always there sometimes coming and going."""
        rng = self.np_random
        if rng.random() < 0.5:  # half the episodes on the scenario itself: the fleet the policy is for
            return self.scenario
        devices = list(self.scenario.devices)
        size = int(rng.integers(2, len(devices) + 1)) if rng.random() < 0.5 else len(devices)
        chosen = [devices[i] for i in rng.permutation(len(devices))[:size]]
        varied = []
        for device in chosen:
            availability = device.availability
            if availability.kind == "markov":
                availability = dataclasses.replace(
                    availability, mean_up_s=availability.mean_up_s * float(np.exp(rng.uniform(-0.7, 0.7))),
                    mean_down_s=availability.mean_down_s * float(np.exp(rng.uniform(-0.7, 0.7))))
            elif availability.kind == "always" and rng.random() < 0.3:
                availability = Availability("markov", mean_up_s=float(rng.uniform(300, 3600)),
                                            mean_down_s=float(rng.uniform(60, 300)))
            varied.append(dataclasses.replace(device, availability=availability))
        return dataclasses.replace(self.scenario, devices=tuple(varied))

    @property
    def names(self) -> tuple[str, ...]:
        """The episode's devices, in their slots."""
        return self.fleet.names

    @property
    def n(self) -> int:
        return self.fleet.n

    # --- Gymnasium API -----------------------------------------------------------------------------------
    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        super().reset(seed=seed)
        self.fleet = self._fleet_for(self._random_fleet() if self.vary_fleet else self.scenario)
        self.state = EpisodeState(self.dynamics.begin_episode(self.fleet, self.np_random))
        return self._get_obs(), {}

    def step(self, action):
        if self.dynamics.stalled(self.state.world):  # no device left and none will return: nothing can train
            outcome = IntervalOutcome("none", 0, False, 0.0, 0.0, 0, 0, self.state.world)
            return self._get_obs(), 0.0, False, True, self._get_info(outcome, 0.0)
        world, waited_s = self.dynamics.before_decision(self.state.world)
        state = self.state if world is self.state.world else dataclasses.replace(self.state, world=world)
        resolved = self._resolve_action(action, world.available)
        outcome = self.dynamics.run(resolved, state, self.np_random)
        if waited_s:
            outcome = dataclasses.replace(outcome, time_s=outcome.time_s + waited_s)
        zeus_cost = self.objective.zeus_cost(outcome.energy_j, outcome.time_s)
        self.state = EpisodeState(outcome.world, state.samples + outcome.samples,
                                  None if outcome.failed else resolved, outcome.failed,
                                  state.totals.add(outcome, zeus_cost))
        terminated = self.state.samples >= self.target
        truncated = not terminated and self.dynamics.stalled(self.state.world)
        return (self._get_obs(), -zeus_cost / self.interval_samples, terminated, truncated,
                self._get_info(outcome, zeus_cost))

    def action_masks(self) -> np.ndarray:
        """Allowed kinds (some subset of the available devices can run them), then per slot: leaving the
        device out (always allowed) and taking it (only when it is available)."""
        if self.state is None:  # the masks depend on who is online, which reset() samples
            raise gym.error.ResetNeeded("call reset() before action_masks(): the masks depend on the devices online")
        available = self.state.world.available
        mask = np.zeros(KINDS + 2 * MAX_DEVICES, dtype=bool)
        mask[:KINDS] = self.fleet.feasible_kinds(available)
        mask[KINDS::2] = True
        for slot in range(self.fleet.n):
            mask[KINDS + 2 * slot + 1] = bool(available >> slot & 1)
        return mask

    def close(self):
        self.dynamics.close()
        super().close()

    def _get_obs(self) -> np.ndarray:
        state, fleet = self.state, self.fleet
        world = state.world
        obs = np.zeros(self.observation_space.shape, dtype=np.float32)
        features = obs[: MAX_DEVICES * DEVICE_FEATURES].reshape(MAX_DEVICES, DEVICE_FEATURES)
        features[:] = fleet.static
        members = state.plan.slots if state.plan else ()
        for i in range(fleet.n):
            if world.available >> i & 1:
                features[i, 1] = 1.0
                features[i, 2] = min(world.up_for_s[i] / 1800.0, 1.0)
            features[i, 8] = world.battery[i]
            features[i, 9] = i in members
        base = MAX_DEVICES * DEVICE_FEATURES
        obs[base] = min(state.samples / self.target, 1.0)
        if state.plan:
            obs[base + 1 + PLAN_KINDS.index(state.plan.plan.kind)] = 1.0
        obs[base + 6] = state.failed
        return obs

    def _get_info(self, outcome: IntervalOutcome, zeus_cost: float) -> dict:
        info = {"energy_j": outcome.energy_j, "time_s": outcome.time_s, "samples": outcome.samples,
                "plan": outcome.plan, "failures": outcome.failures, "lost_steps": outcome.lost_steps,
                "switched": outcome.switched, "zeus_cost": zeus_cost, "job": self.state.totals}
        if outcome.measured is not None:
            run = outcome.measured
            info.update(measured=True, steps=[run["steps"][0]["step"], run["steps"][-1]["step"]], run=run)
        return info

    # --- the planning API (for baselines, evaluation and deployment) -------------------------------------
    def available_devices(self) -> list[str]:
        """The devices available at this decision, in slot order."""
        return [self.fleet.names[i] for i in self.fleet.slots_of(self.state.world.available)]

    def plan_for(self, action) -> ResolvedPlan:
        """The plan an action stands for at this decision."""
        return self._resolve_action(action, self.state.world.available)

    def _resolve_action(self, action, available: int) -> ResolvedPlan:
        fleet = self.fleet
        selected = 0
        for slot in range(fleet.n):
            if action[1 + slot] and available >> slot & 1:
                selected |= 1 << slot
        if selected == 0:  # nothing chosen (or nothing there): the fastest device there, else the fastest
            selected = 1 << next((i for i in fleet.speed_order if available >> i & 1), fleet.speed_order[0])
        return fleet.resolve(PLAN_KINDS[int(action[0])], selected)

    def candidate_plans(self) -> list[ResolvedPlan]:
        """Every distinct plan on the available devices, as actions resolve them."""
        return self.fleet.candidates(self.state.world.available)

    def action_for(self, resolved: ResolvedPlan) -> np.ndarray:
        return action_for(resolved.plan.kind, resolved.slots)

    def what_if(self, first: ResolvedPlan, then: Callable[[EpisodeState], ResolvedPlan],
                max_decisions: int = 100_000) -> tuple[float, int]:
        """Clairvoyance, for reference planners only: the Zeus cost and the samples of finishing the job
        from this decision if `first` runs now and `then(state)` picks every later plan, on the episode's
        true availability trace, noise-free, as `step` would play it. Changes nothing (a job that stalls
        returns what it trained before stalling)."""
        if not isinstance(self.dynamics, SimDynamics):
            raise RuntimeError("only the simulator knows the future")
        saved = self.dynamics.snapshot()
        try:
            state, resolved, cost, samples = self.state, first, 0.0, 0
            for _ in range(max_decisions):
                if self.dynamics.stalled(state.world):
                    break
                outcome = self.dynamics.run(resolved, state, None)
                cost += self.objective.zeus_cost(outcome.energy_j, outcome.time_s)
                samples += outcome.samples
                state = EpisodeState(outcome.world, state.samples + outcome.samples,
                                     None if outcome.failed else resolved, outcome.failed, state.totals)
                if state.samples >= self.target or self.dynamics.stalled(state.world):
                    break
                resolved = then(state)
            return cost, samples
        finally:
            self.dynamics.restore(saved)

    def predicted_interval(self, resolved: ResolvedPlan, steps: Optional[int] = None) -> dict:
        """Clairvoyance, for reference planners only: what `steps` steps (a decision interval by default)
        of this plan would bring from now on the episode's true availability trace, noise-free."""
        if not isinstance(self.dynamics, SimDynamics):
            raise RuntimeError("only the simulator knows the future")
        return self.dynamics.predict(resolved, self.state, self.decision_steps if steps is None else steps)
