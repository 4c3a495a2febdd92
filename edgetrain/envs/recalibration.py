"""Online recalibration: the live runtime's measured steps correct the cost model while a job runs.

A calibration is measured once; devices then drift (thermal throttling, a competing process, a profile
taken on another day) and links carry more or less than measured. Every decision interval that trained
for real gives, per plan, the mean step time and energy per step. From those the
recalibrator fits two factors per device (`Corrections`): one on its compute times, one on its links'
transfer times, and one per plan kind other than local on the step time (what the model of that kind's
schedule gets wrong on any devices: a device's own speed is what its local plan measures), by
regularised least squares in log space over the recent observations:

    minimise  sum_obs w_obs [(log t_pred - log t_meas)^2 + ENERGY_WEIGHT (log e_pred - log e_meas)^2]
              + sum_i PRIOR_i theta_i^2,    theta = log factors

w_obs weighing each residual by its observation's age (HALF_LIFE) and robustly (pseudo-Huber,
ROBUST_SCALE): iteratively reweighted Gauss-Newton with finite-difference Jacobians of the cost model
itself, so every plan kind's structure,
hybrid included, decides how a factor shows in a plan). One plan's step cannot tell which of its devices
is slow; plans over other device sets (and each device's local plan) can. The prior keeps factors that
no observation informs at 1 and damps the rest; factors are bounded to [1/4, 4]. Later decisions are
priced, offered and chosen by the corrected model.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np

from edgetrain.core.plans import Plan
from edgetrain.envs.costmodel import Corrections, CostModel

ENERGY_WEIGHT = 0.5
"""Weight of the step energy residual against the step time residual (per observation). Each device's
CPU seconds are not fitted: the model does not price the CPU that communication takes, so the CPU of
tp and sp steps pushed device factors the wrong way (measured on the testbed: a 6% time error became
10%, energy 5% became 9%)."""
PRIOR = {"compute": 0.02, "link": 0.02, "kind": 0.05}
"""Ridge on the log factors: one observation of a plan moves its device factors ~98% of the way; a
kind's factor is held back harder, so that it takes up what the devices' factors cannot explain across
plans (a schedule the model gets wrong), not what they can."""
MAX_LOG_FACTOR = math.log(4.0)
WINDOW = 24
"""Recent observations fitted, so that a drifting device is followed (and, beyond them, each device's
newest: Recalibrator)."""
ITERATIONS = 6
ROBUST_SCALE = 0.05
"""Residuals (in log) well beyond this count less (pseudo-Huber weights): an interval that ran slow for
a passing reason (a device that just returned still importing, a recovery) does not drag the model."""
HALF_LIFE = 8
"""Observations this many intervals old count half: the model follows a device that drifts."""
STEP = 1e-3  # finite-difference step in log factor


@dataclass(frozen=True)
class Observation:
    plan: Plan
    step_s: float
    energy_j: float
    cpu_s: dict[str, float]
    steps: int


def observe_run(plan: Plan, run: dict) -> Optional[Observation]:
    """The steady steps of one interval of `plan` (a run's metrics dict): the first step is dropped (it
    may pay for starting the plan); None when the interval holds no steady step of that plan alone (a
    recovery changed the plan, or a single step ran)."""
    if len(run.get("plans", ())) != 1 or run["plans"][0]["plan"] != str(plan) or run.get("recoveries"):
        return None
    steps = run["steps"][1:]
    if not steps:
        return None
    cpu = {dev: statistics.fmean(s["devices"][dev]["cpu_s"] for s in steps) for dev in plan.devices}
    return Observation(plan, statistics.fmean(s["time_s"] for s in steps),
                       statistics.fmean(s["energy_j"] for s in steps), cpu, len(steps))


def prediction_error(model: CostModel, observed: Observation) -> dict:
    """Signed relative errors of the model's step time and energy against what was measured."""
    predicted = model.predict(observed.plan)
    return {"step_s": predicted.step_time_s, "energy_j": predicted.total_energy_j,
            "time_error": predicted.step_time_s / observed.step_s - 1.0,
            "energy_error": predicted.total_energy_j / observed.energy_j - 1.0}


class Recalibrator:
    """Holds the observations of a deployment and the model they correct (`model`).

    The fit sees the last `window` observations, and beyond them each device's newest observation that
    the window lacks, weighed as the window's oldest: a device left out of the recent plans (offline for
    a while, or just not chosen) keeps what was last measured of it instead of going back to its
    calibration, which was the error being corrected (its price would jump back at the next offer)."""

    def __init__(self, calibrated: CostModel, window: int = WINDOW):
        self.calibrated = calibrated.calibrated
        self.window = window
        self._recent: deque[tuple[int, Observation]] = deque(maxlen=window)
        self._newest: dict[str, tuple[int, Observation]] = {}
        """Per device: the newest observation of a plan it was in, with its sequence number."""
        self._seen = 0
        self.model: CostModel = self.calibrated

    @property
    def observations(self) -> list[Observation]:
        """What the fit sees, oldest first."""
        return [o for _, o in self._fitted()]

    def _fitted(self) -> list[tuple[float, Observation]]:
        """(age in observations, observation), oldest first: the window, then the devices it lacks."""
        newest = self._seen - 1
        covered = {dev for _, o in self._recent for dev in o.plan.devices}
        # A device the window does not cover has its newest observation outside it (keyed by sequence
        # number: one observation of several such devices is fitted once).
        kept = {seq: o for dev, (seq, o) in self._newest.items() if dev not in covered}
        rows = [(float(min(newest - seq, self.window - 1)), o) for seq, o in sorted(kept.items())]
        return rows + [(float(newest - seq), o) for seq, o in self._recent]

    def observe(self, observed: Observation) -> CostModel:
        """Add a measurement, refit, and return the corrected model."""
        self._recent.append((self._seen, observed))
        for device in observed.plan.devices:
            self._newest[device] = (self._seen, observed)
        self._seen += 1
        self.model = self.calibrated.corrected(self.fit())
        return self.model

    def fit(self) -> Corrections:
        fitted = self._fitted()
        observations = [o for _, o in fitted]
        devices = sorted({dev for o in observations for dev in o.plan.devices})
        if not devices:
            return Corrections()
        # Parameters: each device's log compute factor, then each device's log link factor (a link factor
        # only for devices that were in a plan with another: alone, a device sends nothing).
        linked = sorted({dev for o in observations if o.plan.degree > 1 for dev in o.plan.devices})
        kinds = sorted({o.plan.kind for o in observations if o.plan.kind != "local"})
        names = [("compute", d) for d in devices] + [("link", d) for d in linked] + [("kind", k) for k in kinds]
        theta = np.zeros(len(names))
        prior = np.array([PRIOR[what] for what, _ in names])
        age = np.repeat([age for age, _ in fitted], 2)  # two residuals per observation
        recency = 0.5 ** (age / HALF_LIFE)
        for _ in range(ITERATIONS):
            residual = self._residuals(observations, names, theta)
            jacobian = np.empty((len(residual), len(names)))
            for j in range(len(names)):
                nudged = theta.copy()
                nudged[j] += STEP
                jacobian[:, j] = (self._residuals(observations, names, nudged) - residual) / STEP
            # Iteratively reweighted Gauss-Newton with the ridge prior:
            # (J'WJ + diag(prior)) delta = -(J'W r + prior theta), W = recency x pseudo-Huber weight
            weight = recency / np.sqrt(1.0 + (residual / ROBUST_SCALE) ** 2)
            lhs = jacobian.T @ (weight[:, None] * jacobian) + np.diag(prior)
            delta = np.linalg.solve(lhs, -(jacobian.T @ (weight * residual) + prior * theta))
            theta = np.clip(theta + delta, -MAX_LOG_FACTOR, MAX_LOG_FACTOR)
            if np.max(np.abs(delta)) < 1e-4:
                break
        return _corrections(names, theta)

    def _residuals(self, observations, names, theta) -> np.ndarray:
        model = self.calibrated.corrected(_corrections(names, theta))
        out = []
        for o in observations:
            predicted = model.predict(o.plan)
            out.append(math.log(predicted.step_time_s / o.step_s))
            out.append(math.sqrt(ENERGY_WEIGHT) * math.log(predicted.total_energy_j / o.energy_j))
        return np.asarray(out)


def _corrections(names, theta) -> Corrections:
    compute = {d: math.exp(t) for (what, d), t in zip(names, theta) if what == "compute"}
    link = {d: math.exp(t) for (what, d), t in zip(names, theta) if what == "link"}
    kind = {k: math.exp(t) for (what, k), t in zip(names, theta) if what == "kind"}
    return Corrections(compute, link, kind)
