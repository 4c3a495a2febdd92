"""EdgeTrain-v0: choose, again and again, which devices train and with which parallelism."""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from edgetrain.core.availability import hour_of_day
from edgetrain.core.calibration import default_calibration_path, load_calibration
from edgetrain.core.config import DEFAULT_SWITCH_S, Availability, Scenario
from edgetrain.core.objective import EnergyTimeCost
from edgetrain.core.scenario import load_scenario
from edgetrain.envs.actions import MAX_DEVICES
from edgetrain.envs.candidates import CANDIDATE_FEATURES, JOB_FEATURES, MAX_CANDIDATES, CandidateOffer, job_features
from edgetrain.envs.costmodel import CostModel
from edgetrain.envs.dynamics import Dynamics, JobRules, SimDynamics
from edgetrain.envs.recalibration import Recalibrator, observe_run, prediction_error
from edgetrain.envs.slots import SlotFleet
from edgetrain.envs.state import EpisodeState, IntervalOutcome, ResolvedPlan

OBSERVATION_SIZE = MAX_CANDIDATES * CANDIDATE_FEATURES + JOB_FEATURES


class EdgeTrainEnv(gym.Env):
    """
    ## Description
    One episode is one training job on a scenario's fleet of edge devices: it ends when the scenario's
    `target_samples` have been trained. At every decision the agent picks a plan (a parallelism kind and
    the devices that take part); the plan then trains for `decision_steps` steps. Devices come and go
    along availability traces sampled from the scenario, and batteries drain.

    ## Action Space
    `Discrete(16)`: one of the plans offered at this decision (`edgetrain.envs.candidates`): the
    cheapest plan the cost model predicts on the available devices, the cheapest of each kind and of
    each device count, the cheapest without each member of the cheapest (somewhere to go when a device
    is about to leave), keeping the current plan when its devices are all there, then the next
    cheapest; sorted by predicted Zeus cost per sample, so index 0 is what greedy would run.
    `action_masks()` (for MaskablePPO) allows the indices that hold an offer (index 0 alone when nothing
    is offered: no device is left and none will return, and the step trains nothing); an index beyond
    the offer runs the cheapest offer (every action of the space is valid). If a device of the chosen
    plan is gone by the time it starts (a live fleet moves between observation and action), the plan
    runs on those of its devices still there. Reference planners may pass a `ResolvedPlan` instead of an
    index (`env.resolve(kind, slots)`, `env.candidate_plans()`).

    ## Observation Space
    `Box(0, 1, (16 * 20 + 6,))`, all features normalised to [0, 1], what each offered plan costs this
    job on these devices rather than which slot holds which device, so that a policy carries over to
    fleets and models it was not trained on. Per offered plan (row r, features 20*r + c):

    | c | feature |
    |---|---|
    | 0 | the row holds an offer |
    | 1 | predicted Zeus cost per sample: the cheapest offer's / this one's (1 for the cheapest) |
    | 2 | energy per sample: the least of the offers / this one's |
    | 3 | time per sample: the least of the offers / this one's |
    | 4 | communication share of a step (bytes over the slowest member link / step time, clipped) |
    | 5 | memory headroom of its tightest member (1 - need / memory) |
    | 6 | chance that a member leaves within this interval (its availability process, given how long it has been up; 1 when its daily window closes) |
    | 7 | the same within the next 10 intervals |
    | 8 | lowest battery charge among its members (1 on mains power) |
    | 9 | battery share one interval drains from its hungriest battery member (x10, clipped) |
    | 10 | it is the plan running now (keeping it costs no switch) |
    | 11 | switch time / interval time (0 for the plan running now) |
    | 12 | its devices / the fleet's devices |
    | 13..18 | kind, one-hot (local, dp, pp, tp, sp, hybrid) |
    | 19 | switch payback x / (1 + x): x = its relative cost gain over the running plan x the seconds it is expected to run (until a member leaves, from feature 7, or the job ends) / switch time; 0.5 for the running plan, 0 if no cheaper, 1 for all when no plan runs |

    then the job (index 320 on): progress (samples / target), time of day as 0.5 + 0.5 sin and
    0.5 + 0.5 cos of its angle (the scenario's `start_hour` plus the job's clock), the share of the fleet
    available, the last interval failed, a plan is running.

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
    - `switch_s`: seconds a switch to another plan costs (default: the scenario's `switch_s`, else 2.0).
    - `recalibrate`: live backends: every interval's measured steps correct the cost model that prices
      later decisions (`edgetrain.envs.recalibration`; default on); `info["prediction"]` then holds the
      interval's measured step against the shipped calibration's and the corrected model's prediction.
    - `checkpoint_every`: steps between checkpoints (default 5, as `edgetrain run`).
    - `busy_devices`: mininet: devices that run a CPU-bound process of their own beside the worker, which
      the calibration never saw (a device slower live than its profile).
    - `vary_fleet`: sim: half the episodes on a random subset of the devices in random slots, with
      varied availability (domain randomisation, so that one policy serves fleets it was not trained on).

    ## Version History
    - v0: initial version. (Rewards of `vary_fleet` episodes on a sub-fleet use the scenario's
      `max_power` since the structure rework; the scenario's own episodes are unchanged.) The action
      became a choice among offered plans, with features of what each costs and risks (the job-aware
      policy of issue 10), replacing a plan kind and device bits over per-slot device features: policies
      saved before are refused when loaded.
    """

    metadata = {"render_modes": []}

    def __init__(self, scenario=None, calibration=None, backend: str = "sim", decision_steps: int = 10,
                 noise: float = 0.05, switch_s: Optional[float] = None, checkpoint_every: int = 5, time_scale: float = 1.0,
                 cluster=None, live_dir: Optional[str] = None, progress: Optional[Callable[[str], None]] = None,
                 vary_fleet: bool = False, recalibrate: bool = True, busy_devices: tuple = ()):
        if backend not in ("sim", "mininet", "cluster"):
            raise ValueError(f"unknown backend {backend!r} (sim, mininet or cluster)")
        if vary_fleet and backend != "sim":
            raise ValueError("vary_fleet randomises simulated fleets only (backend 'sim')")
        if busy_devices and backend != "mininet":
            raise ValueError("busy_devices are emulated on the mininet testbed only")
        self.scenario: Scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        if len(self.scenario.devices) > MAX_DEVICES:
            raise ValueError(f"EdgeTrain-v0 serves fleets of up to {MAX_DEVICES} devices")
        self.calibration = (calibration if isinstance(calibration, dict)
                            else load_calibration(calibration or default_calibration_path(self.scenario)))
        self.cost = CostModel(self.calibration, self.scenario)
        self.recalibrator = Recalibrator(self.cost) if recalibrate and backend != "sim" else None
        self.backend = backend
        self.objective = EnergyTimeCost.of(self.scenario)
        self.vary_fleet = vary_fleet
        self.decision_steps = decision_steps
        self.batch = self.scenario.model.batch_size
        self.target = self.scenario.objective.target_samples
        self.interval_samples = decision_steps * self.batch
        if switch_s is None:
            switch_s = DEFAULT_SWITCH_S if self.scenario.switch_s is None else self.scenario.switch_s
        self.rules = rules = JobRules(decision_steps, self.batch, self.target, checkpoint_every, switch_s, noise)
        if backend == "sim":
            self.dynamics: Dynamics = SimDynamics(rules)
        else:
            from edgetrain.envs.live import LiveDynamics  # the runtime and torch only when training for real
            self.dynamics = LiveDynamics(rules, backend=backend, cluster=cluster, time_scale=time_scale,
                                         run_dir=live_dir, progress=progress or (lambda line: None),
                                         busy_devices=busy_devices)
        self.action_space = spaces.Discrete(MAX_CANDIDATES)
        self.observation_space = spaces.Box(0.0, 1.0, (OBSERVATION_SIZE,), dtype=np.float32)
        self._fleets: dict[tuple[str, ...], SlotFleet] = {}
        self._offers: dict[tuple[str, ...], CandidateOffer] = {}
        self.fleet = self._fleet_for(self.scenario)
        self.state: Optional[EpisodeState] = None
        self.offered: list[ResolvedPlan] = []
        """The plans offered at this decision, in action order."""

    # --- the fleet of an episode -------------------------------------------------------------------------
    def _fleet_for(self, scenario: Scenario) -> SlotFleet:
        """What depends only on the devices and their order is kept per fleet (features, plans, masks)."""
        names = tuple(scenario.device_names)
        fleet = self._fleets.get(names)
        if fleet is None:
            # Modes are offered where they can be set: the testbed's workers scale their device's CPU quota;
            # a real device cannot set one yet (runtime/device/power_modes.py).
            fleet = self._fleets[names] = SlotFleet(scenario, self.cost, power_modes=self.backend in ("sim", "mininet"))
            self._offers[names] = CandidateOffer(fleet, self.rules, self.objective)
        fleet = fleet if fleet.scenario is scenario else fleet.for_episode(scenario)
        self._offers[names].fleet = fleet  # the offer's caches depend on the devices; risks on this episode's
        return fleet

    def _random_fleet(self) -> Scenario:
        """Domain randomisation for training a policy that serves other fleets than the one it learned
        on: half the episodes on the scenario itself, the other half on a random subset (at least two
        devices) of its devices in random slots, with their availability made more or less stable,
        and devices that were always there sometimes coming and going (memoryless, or in sessions of a
        typical length)."""
        rng = self.np_random
        if rng.random() < 0.5:  # half the episodes on the scenario itself: the fleet the policy is for
            return self.scenario
        devices = list(self.scenario.devices)
        size = int(rng.integers(2, len(devices) + 1)) if rng.random() < 0.5 else len(devices)
        chosen = [devices[i] for i in rng.permutation(len(devices))[:size]]
        varied = []
        for device in chosen:
            availability = device.availability
            if availability.kind in ("markov", "sessions"):  # up and down made up to 2x longer or shorter
                changes = {"mean_up_s": availability.mean_up_s * float(np.exp(rng.uniform(-0.7, 0.7))),
                           "mean_down_s": availability.mean_down_s * float(np.exp(rng.uniform(-0.7, 0.7)))}
                if availability.kind == "sessions":  # and sessions of more or less typical lengths
                    changes["shape"] = float(rng.uniform(1.5, 5.0))
                availability = dataclasses.replace(availability, **changes)
            elif availability.kind == "always" and rng.random() < 0.3:
                if rng.random() < 0.5:
                    availability = Availability("markov", mean_up_s=float(rng.uniform(300, 3600)),
                                                mean_down_s=float(rng.uniform(60, 300)))
                else:  # sessions of a typical length: a device's age says when it leaves
                    availability = Availability("sessions", mean_up_s=float(rng.uniform(30, 900)),
                                                mean_down_s=float(rng.uniform(15, 300)),
                                                shape=float(rng.uniform(1.5, 5.0)))
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
        if self.state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self.dynamics.stalled(self.state.world):  # no device left and none will return: nothing can train
            outcome = IntervalOutcome("none", 0, False, 0.0, 0.0, 0, 0, self.state.world)
            return self._get_obs(), 0.0, False, True, self._get_info(outcome, 0.0)
        world, waited_s = self.dynamics.before_decision(self.state.world)
        state = self.state if world is self.state.world else dataclasses.replace(self.state, world=world)
        resolved = self._runnable(self._plan_of(action), world.available)
        outcome = self.dynamics.run(resolved, state, self.np_random)
        if waited_s:
            outcome = dataclasses.replace(outcome, time_s=outcome.time_s + waited_s)
        zeus_cost = self.objective.zeus_cost(outcome.energy_j, outcome.time_s)
        learned = None
        if outcome.measured is not None and self.recalibrator is not None:
            learned = self._learn_from(resolved.plan, outcome.measured)
            if learned is not None:
                resolved = self.fleet.priced(resolved.plan)  # the plan running on, priced by the corrected model
        self.state = EpisodeState(outcome.world, state.samples + outcome.samples,
                                  None if outcome.failed else resolved, outcome.failed,
                                  state.totals.add(outcome, zeus_cost))
        terminated = self.state.samples >= self.target
        truncated = not terminated and self.dynamics.stalled(self.state.world)
        info = self._get_info(outcome, zeus_cost)
        if learned is not None:
            info["prediction"] = learned
        return self._get_obs(), -zeus_cost / self.interval_samples, terminated, truncated, info

    def _learn_from(self, plan, run: dict) -> Optional[dict]:
        """Correct the cost model with an interval's measured steps (`Recalibrator`) and rebuild what it
        priced (the fleet's plans and the offer). Returns the interval's prediction errors, of the
        shipped calibration and of the model this decision was priced with, before it learned from it."""
        observed = observe_run(plan, run)
        if observed is None:
            return None
        report = {"plan": str(plan), "steps": observed.steps,
                  "measured": {"step_s": observed.step_s, "energy_j": observed.energy_j, "cpu_s": observed.cpu_s},
                  "calibrated": prediction_error(self.cost.calibrated, observed),
                  "recalibrated": prediction_error(self.cost, observed)}
        self.reprice(self.recalibrator.observe(observed))
        report["corrections"] = self.cost.corrections.to_dict()
        return report

    def reprice(self, cost: CostModel) -> None:
        """Price every later decision by `cost` (a recalibrated model): the fleets' plans and the offers
        are rebuilt from it."""
        self.cost = cost
        self._fleets.clear()
        self._offers.clear()
        self.fleet = self._fleet_for(self.fleet.scenario)

    def action_masks(self) -> np.ndarray:
        """The indices that hold an offered plan."""
        if self.state is None:  # the offer depends on who is online, which reset() samples
            raise gym.error.ResetNeeded("call reset() before action_masks(): the masks depend on the devices online")
        mask = np.zeros(MAX_CANDIDATES, dtype=bool)
        mask[: max(len(self.offered), 1)] = True  # nothing offered (no device, none will return): 0 trains nothing
        return mask

    def close(self):
        self.dynamics.close()
        super().close()

    def hour_of_day(self) -> float:
        return hour_of_day(self.scenario.start_hour, self.state.world.t)

    def _get_obs(self) -> np.ndarray:
        state = self.state
        world = state.world
        offer = self._offers[self.names]
        self.offered = offer.offer(world.available, state.plan) if world.available else []
        hour = self.hour_of_day()
        obs = np.empty(OBSERVATION_SIZE, dtype=np.float32)
        obs[: MAX_CANDIDATES * CANDIDATE_FEATURES] = offer.features(
            self.offered, world, state.plan, hour, self.target - state.samples).ravel()
        obs[MAX_CANDIDATES * CANDIDATE_FEATURES:] = job_features(
            state.samples / self.target, hour, world.available, self.fleet.n, state.failed, state.plan is not None)
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
        """The plan an action (an offer's index, or a plan) stands for at this decision."""
        return self._runnable(self._plan_of(action), self.state.world.available)

    def _plan_of(self, action) -> ResolvedPlan:
        if isinstance(action, ResolvedPlan):
            return action
        if not self.offered:  # nothing available (a stalled job trains nothing whatever the action)
            fastest = self.fleet.speed_order[0]
            return self.fleet.resolve("local", 1 << fastest)
        array = np.asarray(action)
        if array.size != 1 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"an action is the index of one offered plan (Discrete({MAX_CANDIDATES})), got {action!r}")
        index = int(array.reshape(-1)[0])
        if not 0 <= index < MAX_CANDIDATES:
            raise ValueError(f"action {index} is outside Discrete({MAX_CANDIDATES})")
        # Every action of the space is valid (Gymnasium's contract, and its checker samples unmasked):
        # an index beyond the offer runs the cheapest offer; the masks keep MaskablePPO off those indices.
        return self.offered[index] if index < len(self.offered) else self.offered[0]

    def _runnable(self, resolved: ResolvedPlan, available: int) -> ResolvedPlan:
        """The plan on those of its devices that are available (all of them, unless the world moved
        between observation and action), as (kind, devices) resolve; the fastest device there when none is."""
        selected = sum(1 << i for i in resolved.slots if available >> i & 1)
        if selected == sum(1 << i for i in resolved.slots):
            return resolved
        if selected == 0:
            selected = 1 << next((i for i in self.fleet.speed_order if available >> i & 1), self.fleet.speed_order[0])
            return self.fleet.resolve("local", selected)
        return self.fleet.without(resolved, selected)

    def resolve(self, kind: str, slots) -> ResolvedPlan:
        """The plan `kind` on the devices of these slots, or the closest that can run (another kind on the
        same devices, then fewer devices: `SlotFleet.resolve`)."""
        return self.fleet.resolve(kind, sum(1 << int(i) for i in slots))

    def predicted_cost_per_sample(self, resolved: ResolvedPlan) -> float:
        """Zeus cost per sample of one step of the plan, as the cost model predicts it (what the offer is
        sorted by, and what greedy minimises)."""
        return self._offers[self.names].cost_per_sample(resolved)

    def candidate_plans(self) -> list[ResolvedPlan]:
        """Every distinct plan on the available devices (`SlotFleet.candidates`), offered or not."""
        return self.fleet.candidates(self.state.world.available)

    def index_of(self, resolved: ResolvedPlan) -> Optional[int]:
        """The action that picks this plan at this decision, when it is offered."""
        return next((k for k, p in enumerate(self.offered) if p.plan == resolved.plan), None)

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
