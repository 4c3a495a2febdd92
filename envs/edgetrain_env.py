"""EdgeTrain-v0: choose, again and again, which devices train and with which parallelism."""

from __future__ import annotations

import dataclasses
import math
from itertools import combinations
from pathlib import Path
from typing import Optional

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from edgetrain.availability import sample_trace
from edgetrain.config import Availability, Scenario
from edgetrain.plans import PLAN_KINDS, Plan
from edgetrain.profiles import get_profile
from envs.costmodel import CostModel
from runtime.feasibility import device_memory_mb, plan_problems

MAX_DEVICES = 8
DEVICE_FEATURES = 10
# What the runtime needs to notice a vanished device (missed heartbeats, runtime/remote.py).
DETECTION_S = 5.0
# Fallback order when the chosen kind cannot run on the chosen devices (as runtime/recovery.py).
FALLBACK_KINDS = ("dp", "pp", "sp", "tp")


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
    fleet's active power. `info` carries the raw energy, time, samples, plan and failures.

    ## Episode End
    Terminates when `target_samples` are trained; truncated by `max_episode_steps` (registration).

    ## Arguments
    - `scenario`: a Scenario, or a scenario file / built-in name.
    - `profile`: a profile dict or file from `edgetrain profile` (calibrates the simulator).
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
    - v0: initial version.
    """

    metadata = {"render_modes": []}

    def __init__(self, scenario=None, profile=None, backend: str = "sim", decision_steps: int = 10,
                 noise: float = 0.05, switch_s: float = 2.0, checkpoint_every: int = 5, time_scale: float = 1.0,
                 cluster=None, live_dir: Optional[str] = None, progress=None, vary_fleet: bool = False):
        from edgetrain.scenario import load_scenario
        from envs.costmodel import load_profile
        if backend not in ("sim", "mininet", "cluster"):
            raise ValueError(f"unknown backend {backend!r} (sim, mininet or cluster)")
        self.backend = backend
        self.time_scale = time_scale
        self.cluster = cluster
        self.live_dir = live_dir
        self.progress = progress
        self.live = None
        self.scenario: Scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        if len(self.scenario.devices) > MAX_DEVICES:
            raise ValueError(f"EdgeTrain-v0 serves fleets of up to {MAX_DEVICES} devices")
        self.profile = profile if isinstance(profile, dict) else load_profile(profile or default_profile_path(self.scenario))
        self.cost = CostModel(self.profile, self.scenario)
        self.base_scenario = self.scenario
        self.vary_fleet = vary_fleet
        self.decision_steps = decision_steps
        self.noise = noise
        self.switch_s = switch_s
        self.checkpoint_every = checkpoint_every
        self.batch = self.scenario.model.batch_size
        self.target = self.scenario.objective.target_samples
        self.eta = self.scenario.objective.eta
        self.action_space = spaces.MultiDiscrete([len(PLAN_KINDS)] + [2] * MAX_DEVICES)
        self.observation_space = spaces.Box(0.0, 1.0, (MAX_DEVICES * DEVICE_FEATURES + 7,), dtype=np.float32)
        self.interval_samples = decision_steps * self.batch
        self._fleets: dict[tuple, dict] = {}
        self._use_fleet(self.scenario)
        self._horizon_s = 0.0

    # --- the fleet ---------------------------------------------------------------------------------------
    def _use_fleet(self, scenario: Scenario) -> None:
        """Make `scenario`'s devices, in its order, the fleet of the slots. What depends only on the
        devices and their order (static features, resolved plans, kind masks) is kept per fleet."""
        self.scenario = scenario
        self.names = scenario.device_names
        self.n = len(self.names)
        self.powers = [get_profile(d.profile) for d in scenario.devices]
        self.max_power = sum(p.active_power_w.value for p in self.powers)
        self._battery_j = [d.battery_wh * 3600 if d.battery_wh else None for d in scenario.devices]
        fleet = self._fleets.get(tuple(self.names))
        if fleet is None:
            local_times = [self.cost.predict(Plan("local", (name,))).step_time_s for name in self.names]
            static = np.zeros((MAX_DEVICES, DEVICE_FEATURES), dtype=np.float32)
            for i, device in enumerate(scenario.devices):
                static[i, 0] = 1.0
                static[i, 3] = min(local_times) / local_times[i]
                static[i, 4] = min(device.bandwidth_mbps / 100.0, 1.0)
                static[i, 5] = min(device_memory_mb(scenario, device.name) / 8192.0, 1.0)
                static[i, 6] = min(self.powers[i].idle_power_w.value / 30.0, 1.0)
                static[i, 7] = min(self.powers[i].active_power_w.value / 30.0, 1.0)
            fleet = self._fleets[tuple(self.names)] = {
                "speed_order": sorted(range(self.n), key=lambda i: local_times[i]),  # fastest first
                "static": static, "resolved": {}, "kind_masks": {}, "slowest_local_s": max(local_times)}
        self.speed_order = fleet["speed_order"]
        self._static = fleet["static"]
        self._resolved: dict[tuple[int, int], tuple] = fleet["resolved"]
        self._kind_masks: dict[int, np.ndarray] = fleet["kind_masks"]
        self._slowest_local_s = fleet["slowest_local_s"]

    def _random_fleet(self) -> Scenario:
        """Domain randomisation for training a policy that serves other fleets than the one it learned
        on: half the episodes on the scenario itself, the other half on a random subset (at least two
        devices) of its devices in random slots, with their availability made more or less stable,
        and devices that were always there sometimes coming and going."""
        rng = self.np_random
        if rng.random() < 0.5:  # half the episodes on the scenario itself: the fleet the policy is for
            return self.base_scenario
        devices = list(self.base_scenario.devices)
        size = int(rng.integers(2, len(devices) + 1)) if rng.random() < 0.5 else len(devices)
        chosen = [devices[i] for i in rng.permutation(len(devices))[:size]]
        varied = []
        for device in chosen:
            availability = device.availability
            if availability.kind == "markov":
                availability = dataclasses.replace(availability,
                                                   mean_up_s=availability.mean_up_s * float(np.exp(rng.uniform(-0.7, 0.7))),
                                                   mean_down_s=availability.mean_down_s * float(np.exp(rng.uniform(-0.7, 0.7))))
            elif availability.kind == "always" and rng.random() < 0.3:
                availability = Availability("markov", mean_up_s=float(rng.uniform(300, 3600)),
                                            mean_down_s=float(rng.uniform(60, 300)))
            varied.append(dataclasses.replace(device, availability=availability))
        return dataclasses.replace(self.base_scenario, devices=tuple(varied))

    # --- availability ----------------------------------------------------------------------------------
    def _sample_traces(self, horizon_s: float) -> None:
        base_dir = Path(self.scenario.source).parent if self.scenario.source else Path(".")
        self._horizon_s = horizon_s
        self._changes = []  # per device: sorted times at which its state flips, and its state at 0
        self._state0 = []
        for device in self.scenario.devices:
            intervals = sample_trace(device.availability, horizon_s, self.np_random, base_dir)
            times, online0 = [], bool(intervals) and intervals[0][0] <= 0.0
            for start, end in intervals:
                if start > 0.0:
                    times.append(start)
                if end < horizon_s:
                    times.append(end)
            self._changes.append(times)
            self._state0.append(online0)

    def _online(self, i: int, t: float) -> bool:
        flips = self._changes[i]
        count = 0
        for time_ in flips:  # traces are short per episode: a linear scan beats bisect's overhead here
            if time_ > t:
                break
            count += 1
        return self._state0[i] ^ (count % 2 == 1) and not self._flat[i]

    def _next_offline(self, i: int, t: float) -> float:
        """When device i next goes offline after t (inf if never within the horizon)."""
        online = self._state0[i]
        for time_ in self._changes[i]:
            if time_ > t and online:
                return time_
            online = not online
        return math.inf

    def _last_change(self, i: int, t: float) -> float:
        last = 0.0
        for time_ in self._changes[i]:
            if time_ > t:
                break
            last = time_
        return last

    # --- Gymnasium API -----------------------------------------------------------------------------------
    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        super().reset(seed=seed)
        if self.backend != "sim":
            return self._reset_live()
        if self.vary_fleet:
            self._use_fleet(self._random_fleet())
        expected = self.target / self.batch * self._slowest_local_s
        self._flat = [False] * self.n
        self._sample_traces(max(4 * expected, 3600.0))
        self.t = 0.0
        self.samples = 0
        self.plan: Optional[tuple] = None
        self.failed = False
        self.battery = [1.0 if b is None else d.battery_initial_pct / 100.0
                        for b, d in zip(self._battery_j, self.scenario.devices)]
        self._skip_until_available()
        return self._observation(), {}

    def _available_mask(self) -> int:
        if self.live is not None:
            return sum(1 << i for i, up in enumerate(self.live.available()) if up)
        mask = 0
        for i in range(self.n):
            if self._online(i, self.t):
                mask |= 1 << i
        return mask

    def _skip_until_available(self) -> float:
        """No device at all: time passes until one returns. Returns the seconds waited."""
        waited = 0.0
        while self._available_mask() == 0:
            upcoming = [time_ for i in range(self.n) for time_ in self._changes[i] if time_ > self.t and not self._flat[i]]
            if not upcoming:
                break
            step = min(upcoming) + 1e-6 - self.t
            self.t += step
            waited += step
        return waited

    def action_masks(self) -> np.ndarray:
        available = self._available_mask()
        kinds = self._kind_masks.get(available)
        if kinds is None:
            kinds = self._kind_masks[available] = self._feasible_kinds(available)
        mask = np.zeros(len(PLAN_KINDS) + 2 * MAX_DEVICES, dtype=bool)
        mask[: len(PLAN_KINDS)] = kinds
        for slot in range(MAX_DEVICES):
            mask[len(PLAN_KINDS) + 2 * slot] = True
            mask[len(PLAN_KINDS) + 2 * slot + 1] = bool(available >> slot & 1)
        return mask

    def _feasible_kinds(self, available: int) -> np.ndarray:
        devices = [i for i in range(self.n) if available >> i & 1]
        kinds = np.zeros(len(PLAN_KINDS), dtype=bool)
        for k, kind in enumerate(PLAN_KINDS):
            sizes = [1] if kind == "local" else range(2, len(devices) + 1)
            kinds[k] = any(not plan_problems(Plan(kind, tuple(self.names[i] for i in group)), self.scenario)
                           for size in sizes for group in combinations(devices, size))
        if not kinds.any():
            kinds[0] = True
        return kinds

    def resolve(self, kind_index: int, selected: int) -> Optional[tuple]:
        """The plan an action stands for, as (kind, device indices), or None without devices."""
        return self._resolved_plan(kind_index, selected)[0]

    def _resolved_plan(self, kind_index: int, selected: int):
        """(plan, its prediction, its members' idle watts), cached: the hot path of `step`."""
        key = (kind_index, selected)
        entry = self._resolved.get(key)
        if entry is None:
            plan = self._resolve(PLAN_KINDS[kind_index], selected)
            prediction = self.cost.predict(Plan(plan[0], tuple(self.names[i] for i in plan[1])))
            energies = [prediction.energy_j[self.names[i]] for i in plan[1]]
            idle_w = sum(self.powers[i].idle_power_w.value for i in plan[1])
            entry = self._resolved[key] = (plan, prediction, energies, idle_w)
        return entry

    def _resolve(self, kind: str, selected: int) -> Optional[tuple]:
        chosen = [i for i in range(self.n) if selected >> i & 1]
        if not chosen:
            return None
        if kind == "local" or len(chosen) == 1:
            return ("local", (min(chosen, key=self.speed_order.index),))
        chosen_by_speed = sorted(chosen, key=self.speed_order.index)
        while len(chosen_by_speed) > 1:
            group = tuple(sorted(chosen_by_speed))
            for candidate in [kind] + [k for k in FALLBACK_KINDS if k != kind]:
                if not plan_problems(Plan(candidate, tuple(self.names[i] for i in group)), self.scenario):
                    return (candidate, group)
            chosen_by_speed.pop()  # drop the slowest
        return ("local", (chosen_by_speed[0],))

    def _selected(self, action, available: int) -> int:
        selected = 0
        for slot in range(self.n):
            if action[1 + slot] and available >> slot & 1:
                selected |= 1 << slot
        if selected == 0 and available:
            selected = 1 << next(i for i in self.speed_order if available >> i & 1)
        return selected

    def step(self, action):
        if self.live is not None:
            return self._step_live(action)
        kind_index = int(action[0])
        selected = self._selected(action, self._available_mask())
        noise_t = float(np.exp(self.np_random.normal(0.0, self.noise))) if self.noise else 1.0
        noise_e = float(np.exp(self.np_random.normal(0.0, self.noise))) if self.noise else 1.0
        outcome = self.interval(kind_index, selected, noise_t, noise_e)
        plan, members = outcome["plan"], outcome["plan"][1]
        self._drain(members, outcome["per_step_energy"], outcome["compute_steps"], outcome["idle_s"])
        self.t = outcome["end"]
        self.samples += outcome["samples"]
        self.plan = plan if not outcome["failed"] else None
        self.failed = outcome["failed"]
        waited = self._skip_until_available()
        time_s = outcome["duration"] + waited
        energy = outcome["energy"]
        cost = self.eta * energy + (1 - self.eta) * self.max_power * time_s
        reward = -cost / self.interval_samples
        terminated = self.samples >= self.target
        info = {"energy_j": energy, "time_s": time_s, "samples": outcome["samples"], "plan": outcome["plan_name"],
                "failures": int(outcome["failed"]), "lost_steps": outcome["lost_steps"],
                "switched": outcome["switched"], "zeus_cost": cost}
        return self._observation(), float(reward), terminated, False, info

    def interval(self, kind_index: int, selected: int, noise_t: float = 1.0, noise_e: float = 1.0) -> dict:
        """What one decision interval of this plan would bring from the current state, on the episode's
        (true) availability trace; changes nothing. `step` applies it; a clairvoyant planner may ask."""
        plan, prediction, step_energies, idle_w = self._resolved_plan(kind_index, selected)
        members = plan[1]
        step_time = prediction.step_time_s * noise_t
        switched = plan != self.plan
        switch = self.switch_s if switched else 0.0
        duration = switch + self.decision_steps * step_time
        start = self.t
        failure_at = min((self._next_offline(i, start) for i in members), default=math.inf)
        failed = failure_at < start + duration
        if failed:
            trained_time = max(failure_at - start - switch, 0.0)
            done_steps = min(int(trained_time / step_time), self.decision_steps)
            kept_steps = done_steps // self.checkpoint_every * self.checkpoint_every
            duration = (failure_at - start) + DETECTION_S
            compute_steps = trained_time / step_time
        else:
            done_steps = kept_steps = self.decision_steps
            compute_steps = self.decision_steps
        per_step_energy = [e * noise_e for e in step_energies]
        idle = duration - compute_steps * step_time  # the plan's devices idle through switch and failure
        energy = sum(per_step_energy) * compute_steps + idle * idle_w
        return {"plan": plan, "plan_name": prediction.plan, "failed": failed, "switched": switched,
                "duration": duration, "end": start + duration, "energy": energy, "samples": kept_steps * self.batch,
                "lost_steps": done_steps - kept_steps, "per_step_energy": per_step_energy,
                "compute_steps": compute_steps, "idle_s": idle}

    def _drain(self, members, per_step_energy, compute_steps, idle) -> None:
        for index, i in enumerate(members):
            capacity = self._battery_j[i]
            if capacity is None:
                continue
            spent = per_step_energy[index] * compute_steps + idle * self.powers[i].idle_power_w.value
            self.battery[i] = max(0.0, self.battery[i] - spent / capacity)
            if self.battery[i] < 0.10:
                self._flat[i] = True  # below 10% the device leaves for good (as on the testbed)

    # --- live backend ----------------------------------------------------------------------------------
    def _reset_live(self):
        from envs.live import LiveFleet
        if self.live is None:
            self.live = LiveFleet(self.scenario, backend=self.backend, cluster=self.cluster,
                                  seed=int(self.np_random.integers(2 ** 31)), time_scale=self.time_scale,
                                  run_dir=self.live_dir, checkpoint_every=self.checkpoint_every,
                                  progress=self.progress or (lambda line: None))
        self.live.new_episode()
        self.t = 0.0
        self.samples = 0
        self.plan = None
        self.failed = False
        self._flat = [False] * self.n
        self._live_state = list(self.live.available())
        self._live_since = [0.0] * self.n
        self.battery = self.live.battery()
        return self._observation(), {}

    def _step_live(self, action):
        waited = self.live.wait_for_devices()  # no device at all: time passes until one returns
        available = self._available_mask()
        plan, _, _, _ = self._resolved_plan(int(action[0]), self._selected(action, available))
        remaining = -(-(self.target - self.samples) // self.batch)  # the last interval stops at the target
        run = self.live.train(Plan(plan[0], tuple(self.names[i] for i in plan[1])),
                              min(self.decision_steps, remaining))
        total = run["total"]
        energy = total["energy_j"]
        time_s = total["wall_s"] + waited  # wall: startup, switch and recovery included
        samples = len(run["steps"]) * self.batch
        failures = len(run["recoveries"])
        previous = self.plan
        self.t += time_s
        self.samples += samples
        self.plan = plan if not failures else None
        self.failed = failures > 0
        self.battery = self.live.battery()
        cost = self.eta * energy + (1 - self.eta) * self.max_power * time_s
        info = {"energy_j": energy, "time_s": time_s, "samples": samples, "plan": run["plans"][-1]["plan"],
                "failures": failures, "lost_steps": len(run["lost_steps"]), "switched": plan != previous,
                "zeus_cost": cost, "measured": True, "steps": [run["steps"][0]["step"], run["steps"][-1]["step"]],
                "run": run}
        return self._observation(), float(-cost / self.interval_samples), self.samples >= self.target, False, info

    def close(self):
        if self.live is not None:
            self.live.close()
            self.live = None
        super().close()

    def _observation(self) -> np.ndarray:
        obs = np.zeros(self.observation_space.shape, dtype=np.float32)
        features = obs[: MAX_DEVICES * DEVICE_FEATURES].reshape(MAX_DEVICES, DEVICE_FEATURES)
        features[:] = self._static
        members = set(self.plan[1]) if self.plan else ()
        live_up = self.live.available() if self.live is not None else None
        for i in range(self.n):
            if live_up is not None:
                online = live_up[i]
                if online != self._live_state[i]:  # as seen at decisions: the testbed reports no history
                    self._live_state[i], self._live_since[i] = online, self.t
                if online:
                    features[i, 2] = min((self.t - self._live_since[i]) / 1800.0, 1.0)
            else:
                online = self._online(i, self.t)
                if online:
                    features[i, 2] = min((self.t - self._last_change(i, self.t)) / 1800.0, 1.0)
            features[i, 1] = online
            features[i, 8] = self.battery[i]
            features[i, 9] = i in members
        base = MAX_DEVICES * DEVICE_FEATURES
        obs[base] = min(self.samples / self.target, 1.0)
        if self.plan:
            obs[base + 1 + PLAN_KINDS.index(self.plan[0])] = 1.0
        obs[base + 6] = self.failed
        return obs


def default_profile_path(scenario: Scenario) -> str:
    """Profiles measured on this machine ship next to the built-in scenarios."""
    from edgetrain.scenario import BUILTIN_DIR
    return str(BUILTIN_DIR / "profiles" / f"{scenario.name}.json")
