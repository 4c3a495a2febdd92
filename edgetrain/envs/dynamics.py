"""How the world answers a plan: the one interface behind EdgeTrain-v0, and its simulated side.

`Dynamics` is what the env steps through. `SimDynamics` (here) answers from the calibrated cost model
and availability traces sampled from the scenario; `LiveDynamics` (envs/live.py) trains for real on
the emulated testbed or on real devices. The env itself holds no world state: it keeps one
`EpisodeState` and replaces it with what the dynamics report.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetrain.core.availability import charged_at_s, hour_of_day, hours_overlap_s, sample_trace, within_hours
from edgetrain.core.rules import BATTERY_CUTOFF_PCT, BATTERY_RETURN_PCT, HEARTBEAT_TIMEOUT_S
from edgetrain.envs.slots import SlotFleet
from edgetrain.envs.state import EpisodeState, IntervalOutcome, ResolvedPlan, World


@dataclass(frozen=True)
class JobRules:
    """What the env's arguments fix about every interval."""

    decision_steps: int
    batch_size: int
    target_samples: int
    checkpoint_every: int
    switch_s: float
    """Seconds to start the shards of a new plan."""
    noise: float
    """Sim: relative standard deviation of time and energy."""


class Dynamics(ABC):
    measured: bool
    """True when intervals are trained for real (their figures are measurements)."""

    @abstractmethod
    def begin_episode(self, fleet: SlotFleet, rng: np.random.Generator) -> World:
        """A new job on `fleet`: the world at its first decision (after waiting for a device, if none is
        there)."""

    def before_decision(self, world: World) -> tuple[World, float]:
        """The world as the plan starts, and the seconds spent waiting for a device. The simulator's
        world does not move between observation and action; a live fleet may have."""
        return world, 0.0

    @abstractmethod
    def run(self, resolved: ResolvedPlan, state: EpisodeState, rng: np.random.Generator) -> IntervalOutcome:
        """Train `resolved` for one decision interval from `state`."""

    def stalled(self, world: World) -> bool:
        """No device is there and none will ever return: the job cannot go on."""
        return False

    def close(self) -> None:
        pass


class SimDynamics(Dynamics):
    """The calibrated simulator: the cost model's predictions with log-normal noise, availability from
    traces sampled per episode, batteries that drain with the predicted energy. A device that leaves
    during an interval costs the work since the last checkpoint, the detection time and the idle power
    of the plan's devices meanwhile. Batteries, as on the testbed: every online battery device pays
    its idle power, a plan's members their predicted energy; one that crosses the cutoff leaves at that
    moment (a member's crossing fails the interval there). While plugged in (`charging_hours`) a battery
    gains `charge_w` (online or not); a device that ran flat returns, when its availability has it
    online, at the first decision after its charge reaches BATTERY_RETURN_PCT; when no device is left,
    time passes until a charger brings one back (the wait is paid in time). (Whether a member is
    plugged in is read at the interval's start for its cutoff time, and the charge is settled per
    interval: windows are hours, intervals seconds.)"""

    measured = False

    def __init__(self, rules: JobRules):
        self.rules = rules

    def begin_episode(self, fleet: SlotFleet, rng: np.random.Generator) -> World:
        self.fleet = fleet
        scenario = fleet.scenario
        expected_s = self.rules.target_samples / self.rules.batch_size * fleet.slowest_local_s
        self.horizon_s = max(4 * expected_s, 3600.0)
        base_dir = Path(scenario.source).parent if scenario.source else Path(".")
        self.flips: list[list[float]] = []  # per slot: sorted times at which its state changes
        self.up_at_0: list[bool] = []
        self.up_since: list[float] = []  # per slot: when the session running at 0 began (<= 0)
        for device in scenario.devices:
            intervals = sample_trace(device.availability, self.horizon_s, rng, base_dir, scenario.start_hour)
            times = []
            for start, end in intervals:
                if start > 0.0:
                    times.append(start)
                if end < self.horizon_s:
                    times.append(end)
            self.flips.append(times)
            self.up_at_0.append(bool(intervals) and intervals[0][0] <= 0.0)
            self.up_since.append(min(intervals[0][0], 0.0) if self.up_at_0[-1] else 0.0)
        self.flat = [False] * fleet.n  # batteries run down: gone until a charger brings them back
        battery = tuple(1.0 if capacity is None else device.battery_initial_pct / 100.0
                        for capacity, device in zip(fleet.battery_j, scenario.devices))
        t, _, available, battery = self._wait_for_a_device(0.0, battery)
        return self.world(t, available, battery)

    # --- the availability trace ------------------------------------------------------------------------
    def online(self, i: int, t: float) -> bool:
        count = 0
        for flip in self.flips[i]:  # a few flips per episode: a linear scan beats bisect here
            if flip > t:
                break
            count += 1
        return self.up_at_0[i] ^ (count % 2 == 1) and not self.flat[i]

    def next_offline(self, i: int, t: float) -> float:
        """When device i next leaves after t (inf if not within the horizon)."""
        online = self.up_at_0[i]
        for flip in self.flips[i]:
            if flip > t and online:
                return flip
            online = not online
        return math.inf

    def online_seconds(self, i: int, start: float, end: float) -> float:
        """How long device i is online within [start, end)."""
        if self.flat[i]:
            return 0.0
        total, online, since = 0.0, self.up_at_0[i], 0.0
        for flip in self.flips[i] + [math.inf]:
            if online:
                total += max(0.0, min(flip, end) - max(since, start))
            if flip >= end:
                break
            online, since = not online, flip
        return total

    def _last_change(self, i: int, t: float) -> float:
        last = self.up_since[i]
        for flip in self.flips[i]:
            if flip > t:
                break
            last = flip
        return last

    def _available(self, t: float) -> int:
        mask = 0
        for i in range(self.fleet.n):
            if self.online(i, t):
                mask |= 1 << i
        return mask

    def _wait_for_a_device(self, t: float, battery: tuple[float, ...]) -> tuple[float, float, int, tuple[float, ...]]:
        """No device at all: time passes until one returns, from its availability trace or, for a device
        that ran flat, when its charger has brought it back to BATTERY_RETURN_PCT (and its availability
        has it online). Nothing is online meanwhile, so batteries only charge.
        (new t, seconds waited, available mask, battery charges)"""
        start = t
        available = self._available(t)
        while available == 0:
            upcoming = [flip for i in range(self.fleet.n) if not self.flat[i] for flip in self.flips[i] if flip > t]
            upcoming += [self._recharged_at(i, battery[i], t) for i in range(self.fleet.n) if self.flat[i]]
            upcoming = [u for u in upcoming if u < math.inf]
            if not upcoming:
                break
            now = max(min(upcoming), t) + 1e-6
            battery = self._charge(battery, t, now)
            t = now
            available = self._available(t)
        return t, t - start, available, battery

    def _recharged_at(self, i: int, charge: float, t: float) -> float:
        device, capacity = self.fleet.scenario.devices[i], self.fleet.battery_j[i]
        need_j = (BATTERY_RETURN_PCT / 100.0 - charge) * capacity
        return charged_at_s(device.charging_hours, self.fleet.scenario.start_hour, t, device.charge_w, need_j)

    def _charge(self, battery: tuple[float, ...], start: float, end: float) -> tuple[float, ...]:
        """Charges after [start, end) with every device off (only chargers act); flat ones charged enough
        are back."""
        charge = list(battery)
        for i, capacity in enumerate(self.fleet.battery_j):
            if capacity is None:
                continue
            device = self.fleet.scenario.devices[i]
            gained = device.charge_w * hours_overlap_s(device.charging_hours, self.fleet.scenario.start_hour, start, end)
            charge[i] = min(1.0, charge[i] + gained / capacity)
            if self.flat[i] and charge[i] >= BATTERY_RETURN_PCT / 100.0 - 1e-9:
                self.flat[i] = False
        return tuple(charge)

    def world(self, t: float, available: int, battery: tuple[float, ...]) -> World:
        up_for = tuple(t - self._last_change(i, t) if available >> i & 1 else 0.0 for i in range(self.fleet.n))
        return World(t, available, up_for, battery)

    # --- one interval ------------------------------------------------------------------------------------
    def predict(self, resolved: ResolvedPlan, state: EpisodeState, steps: int, noise_t: float = 1.0,
                noise_e: float = 1.0) -> dict:
        """What `steps` training steps of this plan would bring from `state` on the episode's true
        availability trace; changes nothing. `run` applies it; a clairvoyant planner may ask."""
        rules = self.rules
        step_time = resolved.prediction.step_time_s * noise_t
        switched = state.plan is None or resolved.plan != state.plan.plan
        switch = rules.switch_s if switched else 0.0
        duration = switch + steps * step_time
        start = state.world.t
        per_step_energy = [e * noise_e for e in resolved.step_energies_j]
        failure_at = min(min((self.next_offline(i, start) for i in resolved.slots), default=math.inf),
                         self._battery_cutoff_at(resolved, state, switch, step_time, per_step_energy))
        failed = failure_at < start + duration
        if failed:
            trained_time = max(failure_at - start - switch, 0.0)
            done_steps = min(int(trained_time / step_time), steps)
            kept_steps = done_steps // rules.checkpoint_every * rules.checkpoint_every
            duration = (failure_at - start) + HEARTBEAT_TIMEOUT_S
            compute_steps = trained_time / step_time
        else:
            done_steps = kept_steps = steps
            compute_steps = steps
        idle_s = duration - compute_steps * step_time  # the plan's devices idle through switch and failure
        energy = sum(per_step_energy) * compute_steps + idle_s * resolved.idle_w
        return {"failed": failed, "switched": switched, "duration_s": duration, "energy_j": energy,
                "samples": kept_steps * rules.batch_size, "lost_steps": done_steps - kept_steps,
                "per_step_energy_j": per_step_energy, "compute_steps": compute_steps, "idle_s": idle_s}

    def _battery_cutoff_at(self, resolved: ResolvedPlan, state: EpisodeState, switch_s: float, step_time: float,
                           per_step_energy: list[float]) -> float:
        """When the first battery member would cross the cutoff, drawing its idle power through the switch
        and its predicted training power after (inf when none would within the interval's reach)."""
        earliest = math.inf
        for index, i in enumerate(resolved.slots):
            capacity = self.fleet.battery_j[i]
            if capacity is None:
                continue
            budget_j = (state.world.battery[i] - BATTERY_CUTOFF_PCT / 100.0) * capacity
            device = self.fleet.scenario.devices[i]
            charging_w = device.charge_w if within_hours(device.charging_hours, hour_of_day(self.fleet.scenario.start_hour, state.world.t)) else 0.0
            idle_w = self.fleet.powers[i].idle_power_w.value - charging_w
            training_w = per_step_energy[index] / step_time - charging_w
            if budget_j <= idle_w * switch_s:
                cut_s = max(budget_j, 0.0) / idle_w
            elif training_w <= 0:  # the charger outpaces training: it never runs flat
                continue
            else:
                cut_s = switch_s + (budget_j - max(idle_w, 0.0) * switch_s) / training_w
            earliest = min(earliest, state.world.t + cut_s)
        return earliest

    def stalled(self, world: World) -> bool:
        return world.available == 0  # it already waited for the next device to return: there is none

    def snapshot(self) -> tuple:
        """What `run` changes besides the state it returns (which devices ran flat), for a clairvoyant
        planner that tries futures and must leave this one as it found it."""
        return tuple(self.flat)

    def restore(self, snapshot: tuple) -> None:
        self.flat = list(snapshot)

    def run(self, resolved: ResolvedPlan, state: EpisodeState, rng: np.random.Generator | None) -> IntervalOutcome:
        """One interval, with the scenario's noise drawn from `rng` (none when `rng` is None)."""
        noise = self.rules.noise if rng is not None else 0.0
        noise_t = float(np.exp(rng.normal(0.0, noise))) if noise else 1.0
        noise_e = float(np.exp(rng.normal(0.0, noise))) if noise else 1.0
        p = self.predict(resolved, state, self.rules.decision_steps, noise_t, noise_e)
        battery = self._drain(state.world.battery, resolved, p, state.world.t)
        t, waited, available, battery = self._wait_for_a_device(state.world.t + p["duration_s"], battery)
        return IntervalOutcome(str(resolved.plan), int(p["failed"]), p["switched"], p["duration_s"] + waited,
                               p["energy_j"], p["samples"], p["lost_steps"], self.world(t, available, battery))

    def _drain(self, battery: tuple[float, ...], resolved: ResolvedPlan, p: dict, start: float) -> tuple[float, ...]:
        charge = list(battery)
        end = start + p["duration_s"]
        for i in range(self.fleet.n):
            capacity = self.fleet.battery_j[i]
            if capacity is None:
                continue
            device = self.fleet.scenario.devices[i]
            idle_w = self.fleet.powers[i].idle_power_w.value
            if i in resolved.slots:
                spent = p["per_step_energy_j"][resolved.slots.index(i)] * p["compute_steps"] + p["idle_s"] * idle_w
            else:  # not training, but on and drawing its idle power while online (as on the testbed)
                spent = idle_w * self.online_seconds(i, start, end)
            charged = device.charge_w * hours_overlap_s(device.charging_hours, self.fleet.scenario.start_hour, start, end)
            before, charge[i] = charge[i], min(1.0, max(0.0, charge[i] + (charged - spent) / capacity))
            if charge[i] < BATTERY_CUTOFF_PCT / 100.0:
                # At the cutoff the device leaves (as on the testbed): it draws nothing after that.
                self.flat[i] = True
                charge[i] = min(before, BATTERY_CUTOFF_PCT / 100.0)
            elif self.flat[i] and charge[i] >= BATTERY_RETURN_PCT / 100.0:
                self.flat[i] = False  # charged enough: back when its availability has it online
        return tuple(charge)
