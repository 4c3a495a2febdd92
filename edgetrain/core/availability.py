"""Availability traces: when each device is online, as a list of [start, end) intervals in seconds.

Shared by the emulated testbed (which cuts devices off at those times) and the simulator (which
samples the same traces), so that both see the same kind of churn for a scenario.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgetrain.core.config import Availability, Scenario
from edgetrain.core.errors import ScenarioError

Intervals = list[tuple[float, float]]


DAY_S = 86400.0


def sample_trace(availability: Availability, horizon_s: float, rng: np.random.Generator,
                 base_dir: Path = Path("."), start_hour: float = 0.0) -> Intervals:
    """Online intervals within [0, horizon_s). Markov devices start in their stationary distribution.
    Sessions devices too, with their age: an interval that began before the job has a negative start
    (how long the device had been online when the job started matters when durations are not
    memoryless); consumers that only need the times within the job clip it at 0."""
    if availability.kind == "always":
        return [(0.0, horizon_s)]
    if availability.kind == "trace":
        return [(s, min(e, horizon_s)) for s, e in read_trace_file(base_dir / availability.file) if s < horizon_s]
    if availability.kind == "sessions":
        return _sessions(availability, horizon_s, rng, start_hour)
    up, down = availability.mean_up_s, availability.mean_down_s
    online = rng.random() < up / (up + down)
    t, intervals = 0.0, []
    while t < horizon_s:
        length = rng.exponential(up if online else down)
        if online:
            intervals.append((t, min(t + length, horizon_s)))
        t += length
        online = not online
    return intervals


def weibull_scale(mean_s: float, shape: float) -> float:
    """The Weibull scale whose mean is mean_s: mean = scale * Gamma(1 + 1/shape)."""
    return mean_s / math.gamma(1.0 + 1.0 / shape)


def _sessions(availability: Availability, horizon_s: float, rng: np.random.Generator,
              start_hour: float) -> Intervals:
    """An alternating renewal process of Weibull online and offline durations, started long enough
    before the job (ten mean cycles) that the job sees it in its steady state, ages included; with
    `hours`, kept only within those windows of each day."""
    shape = availability.weibull_shape
    up_scale = weibull_scale(availability.mean_up_s, shape)
    down_scale = weibull_scale(availability.mean_down_s, shape)
    t = -10.0 * (availability.mean_up_s + availability.mean_down_s)
    online = bool(rng.random() < availability.mean_up_s / (availability.mean_up_s + availability.mean_down_s))
    intervals: Intervals = []
    while t < horizon_s:
        length = (up_scale if online else down_scale) * float(rng.weibull(shape))
        if online and t + length > 0.0:
            intervals.append((t, min(t + length, horizon_s)))
        t += length
        online = not online
    if availability.hours:
        intervals = _within_hours(intervals, availability.hours, start_hour, horizon_s)
    return intervals


def _within_hours(intervals: Intervals, hours: tuple, start_hour: float, horizon_s: float) -> Intervals:
    """The parts of `intervals` that fall in the daily windows; job time 0 is `start_hour` o'clock."""
    offset = start_hour * 3600.0
    windows = []
    first_day = math.floor((min((s for s, _ in intervals), default=0.0) + offset) / DAY_S)
    for day in range(first_day, int((horizon_s + offset) // DAY_S) + 1):
        for start_h, end_h in hours:
            windows.append((day * DAY_S + start_h * 3600.0 - offset, day * DAY_S + end_h * 3600.0 - offset))
    kept: Intervals = []
    for start, end in intervals:
        for w_start, w_end in windows:
            low, high = max(start, w_start), min(end, w_end)
            if low < high:
                if kept and low <= kept[-1][1]:  # a session across midnight of two touching windows
                    kept[-1] = (kept[-1][0], max(high, kept[-1][1]))
                else:
                    kept.append((low, high))
    return kept


def read_trace_file(path: Path) -> Intervals:
    """`start_s end_s` per line; '#' starts a comment. Intervals must be increasing and disjoint;
    intervals that touch (`0 4`, `4 10`) are one interval (the device does not flap off and on)."""
    intervals: Intervals = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"availability trace {path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    for number, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            start, end = (float(x) for x in line.split())
        except ValueError:
            raise ScenarioError(f"availability trace {path}, line {number}: expected 'start_s end_s'") from None
        if not (math.isfinite(start) and math.isfinite(end)) or not 0 <= start < end \
                or (intervals and start < intervals[-1][1]):
            raise ScenarioError(f"availability trace {path}, line {number}: intervals must be increasing, "
                                "disjoint and non-empty")
        if intervals and start == intervals[-1][1]:
            intervals[-1] = (intervals[-1][0], end)
        else:
            intervals.append((start, end))
    return intervals


def transitions(intervals: Intervals) -> list[tuple[float, bool]]:
    """(time, online) for every change, in order; a device online at 0 has an initial (0, True)."""
    changes: list[tuple[float, bool]] = []
    for start, end in intervals:
        changes.append((start, True))
        changes.append((end, False))
    return changes


def availability_events(scenario: Scenario, seed: int, horizon_s: float) -> list[tuple[float, str, bool]]:
    """(time, device, online) of every change a testbed seeded with `seed` plays within the horizon, in
    order; a device that starts offline has a (0, device, False) event."""
    rng = np.random.default_rng(seed)
    base = Path(scenario.source).parent if scenario.source else Path(".")
    events = []
    for device in scenario.devices:
        trace = sample_trace(device.availability, horizon_s, rng, base, scenario.start_hour)
        if not trace or trace[0][0] > 0:
            events.append((0.0, device.name, False))
        events += [(max(t, 0.0), device.name, online) for t, online in transitions(trace) if t < horizon_s]
    return sorted(events, key=lambda e: e[0])


def leave_probability(availability: Availability, age_s: float, within_s: float, hour_of_day: float) -> float:
    """The chance that a device online for `age_s` leaves within the next `within_s` seconds, from what its
    scenario says of it (no clairvoyance): 0 for `always` and for a recorded `trace` (whose future the
    scenario does not model), the exponential's for `markov` (memoryless: the age does not matter), the
    Weibull's conditional one for `sessions` (S(age + h) / S(age) survives), and 1 when the device's daily
    window closes within the horizon."""
    if availability.kind == "markov":
        return 1.0 - math.exp(-within_s / availability.mean_up_s)
    if availability.kind != "sessions":
        return 0.0
    if availability.hours:
        hour = hour_of_day % 24.0
        closes = next((end for start, end in availability.hours if start <= hour < end), None)
        runs_past_midnight = closes == 24.0 and availability.hours[0][0] == 0.0
        if closes is not None and not runs_past_midnight and (closes - hour) * 3600.0 <= within_s:
            return 1.0
    shape = availability.weibull_shape
    scale = weibull_scale(availability.mean_up_s, shape)
    survived = (max(age_s, 0.0) / scale) ** shape
    survives = (max(age_s + within_s, 0.0) / scale) ** shape
    return 1.0 - math.exp(survived - survives)


def hours_overlap_s(hours: tuple | None, start_hour: float, t0_s: float, t1_s: float) -> float:
    """Seconds of job time [t0_s, t1_s) that fall within the daily windows `hours` (job time 0 is
    `start_hour` o'clock): how long a device is plugged in over an interval."""
    if not hours or t1_s <= t0_s:
        return 0.0
    offset = start_hour * 3600.0
    total = 0.0
    for day in range(math.floor((t0_s + offset) / DAY_S), math.floor((t1_s + offset) / DAY_S) + 1):
        for start_h, end_h in hours:
            low = max(t0_s, day * DAY_S + start_h * 3600.0 - offset)
            high = min(t1_s, day * DAY_S + end_h * 3600.0 - offset)
            total += max(0.0, high - low)
    return total


def hour_of_day(start_hour: float, t_s: float) -> float:
    """The time of day, in hours, `t_s` seconds into a job that started at `start_hour` o'clock."""
    return (start_hour + t_s / 3600.0) % 24.0


def within_hours(hours: tuple | None, hour_of_day: float) -> bool:
    return bool(hours) and any(start <= hour_of_day % 24.0 < end for start, end in hours)


def charged_at_s(hours: tuple | None, start_hour: float, t0_s: float, charge_w: float, need_j: float,
                 within_days: int = 7) -> float:
    """The job time at which a charger plugged in during the daily windows `hours` has delivered `need_j`
    joules at `charge_w`, counting from `t0_s` (inf when it never does within `within_days`)."""
    if need_j <= 0.0:
        return t0_s
    if not hours or charge_w <= 0.0:
        return math.inf
    offset = start_hour * 3600.0
    first_day = math.floor((t0_s + offset) / DAY_S)
    for day in range(first_day, first_day + within_days + 1):
        for start_h, end_h in sorted(hours):
            low = max(t0_s, day * DAY_S + start_h * 3600.0 - offset)
            high = day * DAY_S + end_h * 3600.0 - offset
            if high <= low:
                continue
            if (high - low) * charge_w >= need_j:
                return low + need_j / charge_w
            need_j -= (high - low) * charge_w
    return math.inf
