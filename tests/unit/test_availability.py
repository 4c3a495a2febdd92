"""Each availability process reproduces its parameters' statistics over long samples, and the sessions
kind keeps what makes it not memoryless: durations around their mean, ages at the job's start, and
daily windows."""

import numpy as np
import pytest

from edgetrain.core.availability import DAY_S, availability_events, sample_trace
from edgetrain.core.config import Availability
from edgetrain.core.scenario import parse_scenario

HORIZON = 2_000_000.0


def _durations(intervals, horizon):
    """Online and offline durations strictly inside (0, horizon): clipped ends would bias them."""
    inner = [(s, e) for s, e in intervals if s > 0 and e < horizon]
    up = np.array([e - s for s, e in inner])
    down = np.array([b[0] - a[1] for a, b in zip(inner, inner[1:])])
    return up, down


@pytest.mark.parametrize("kind, shape, cv", [("markov", None, 1.0), ("sessions", 1.0, 1.0),
                                             ("sessions", 3.0, 0.36), ("sessions", 8.0, 0.15)])
def test_durations_have_the_configured_mean_and_spread(kind, shape, cv):
    """Means within 3%; the coefficient of variation is the Weibull's (1 for the Markov chain, 0.36 at
    shape 3): what makes a device's age informative."""
    availability = Availability(kind, mean_up_s=120.0, mean_down_s=40.0, shape=shape)
    up, down = _durations(sample_trace(availability, HORIZON, np.random.default_rng(0)), HORIZON)
    assert len(up) > 5000
    for durations, mean in ((up, 120.0), (down, 40.0)):
        assert durations.mean() == pytest.approx(mean, rel=0.03)
        assert durations.std() / durations.mean() == pytest.approx(cv, abs=0.03)


def test_sessions_start_in_steady_state_with_their_age():
    """The share of jobs that start with the device online is up / (up + down), and a device online at
    the start has usually been online for a while already (a negative start)."""
    availability = Availability("sessions", mean_up_s=300.0, mean_down_s=100.0, shape=3.0)
    rng = np.random.default_rng(1)
    traces = [sample_trace(availability, 1000.0, rng) for _ in range(4000)]
    online_at_0 = [t for t in traces if t and t[0][0] <= 0]
    assert len(online_at_0) / len(traces) == pytest.approx(0.75, abs=0.03)
    ages = np.array([-t[0][0] for t in online_at_0])
    # The age of a renewal process seen at a random time has mean E[X^2] / (2 E[X]) = (1 + cv^2) / 2 * mean.
    assert ages.mean() == pytest.approx((1 + 0.364 ** 2) / 2 * 300.0, rel=0.06)


def test_sessions_stay_inside_their_daily_hours():
    """A device with hours [[0, 6], [20, 24]] is never online between 6 and 20 o'clock, whatever hour
    the job starts at; and it is online for a good part of its windows."""
    availability = Availability("sessions", mean_up_s=1800.0, mean_down_s=600.0, shape=2.0,
                                hours=[[0, 6], [20, 24]])
    for start_hour in (0.0, 9.5, 21.0):
        intervals = sample_trace(availability, 10 * DAY_S, np.random.default_rng(2), start_hour=start_hour)
        online_in_window = 0.0
        for start, end in intervals:
            start = max(start, 0.0)
            for t in np.arange(start, end, 60.0):
                hour = (start_hour + t / 3600.0) % 24
                assert hour >= 20 or hour < 6 + 1e-6, (start_hour, start, end, hour)
            online_in_window += end - start
        assert online_in_window / (10 * 10 * 3600.0) > 0.5


def test_the_testbed_plays_sessions_from_time_zero():
    """The testbed's events never start before the job (an age is the simulator's business)."""
    scenario = parse_scenario("""
name: s
start_hour: 22
devices:
  - {name: a, profile: laptop, availability: {kind: sessions, mean_up_s: 30, mean_down_s: 10, hours: [[21, 23]]}}
""", "s.yaml")
    events = availability_events(scenario, seed=3, horizon_s=7200.0)
    assert events and all(t >= 0.0 for t, _, _ in events)
    assert all(t <= 3600.0 + 1e-6 for t, _, online in events if online)  # the window closes at 23:00
