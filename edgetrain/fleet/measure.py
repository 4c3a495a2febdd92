"""The measuring pipelines everything shares: calibrating a fleet, and measuring what plans really cost.
`edgetrain calibrate`, the demo, the fidelity benchmark and the fidelity tests all call these, so they
cannot drift apart (warm-up first, the backend's facts recorded, the first step of a plan not timed)."""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from edgetrain.core.config import ModelConfig, Scenario
from edgetrain.core.errors import RunError
from edgetrain.core.plans import Plan
from edgetrain.fleet.backends import Backend
from edgetrain.runtime.coordinator.calibration import calibrate_devices
from edgetrain.runtime.coordinator.job import Job, run_job


# What warms a device up: the smallest model, so that it fits any device (a scenario's own model may fit
# none alone: that is what pipelines are for).
WARM_UP_MODEL = ModelConfig(layers=1, d_model=16, heads=2, seq_len=8, batch_size=2)


def warm_up_devices(backend: Backend, scenario: Scenario, standby: bool = False, devices: Optional[list[str]] = None,
                    best_effort: bool = False, timeout_s: float = 120.0) -> None:
    """Run one training step on every device alone, so that every worker's warm shard process has
    imported torch before anything is measured: on a fresh testbed all of them import at once, and on
    a 2-core machine that slows whatever runs beside them for the first ten seconds or so.
    `standby`: also have each worker make its standby process (what a recovering job asks for) and wait
    until every one has imported, so that no import runs beside the first plans' steps: a standby
    importing beside a shard took half of an emulated device's CPU quota and doubled its step time.
    `devices`: only these (all of the scenario's by default); `best_effort`: a device that fails or
    leaves is skipped (it is warmed by its first plan instead)."""
    small = dataclasses.replace(scenario, model=WARM_UP_MODEL)
    devices = scenario.device_names if devices is None else devices
    warmed = []
    for device in devices:
        try:
            run_job(Job(scenario=small, plan=Plan("local", (device,)), steps=1,
                        run_dir=Path(tempfile.mkdtemp(prefix=f"edgetrain-warm-{device}-")),
                        device_cores=backend.device_cores, socket_ifnames=backend.socket_ifnames, standby=standby),
                    backend.launcher)
            warmed.append(device)
        except (RunError, ConnectionError):
            if not best_effort:
                raise
    clients = getattr(backend.launcher, "clients", None)
    if not standby or clients is None:  # a local launcher keeps no processes between plans
        return
    deadline = time.monotonic() + timeout_s
    waiting = [d for d in warmed if d in clients]
    while waiting and time.monotonic() < deadline:
        try:
            waiting = [d for d in waiting if clients[d].status().get("spares_importing", 0) > 0]
        except ConnectionError:
            return  # a device left: its first plan will tell
        if waiting:
            time.sleep(0.25)


def calibrate_fleet(backend: Backend, scenario: Scenario, run_dir: Path,
                    progress: Callable[[str], None] = lambda line: None) -> dict:
    """Warm every device up, measure them (edgetrain.core.calibration) and record the backend's facts
    (CPU shares and links on the testbed, which the cost model checks a scenario against)."""
    progress(f"warming up {len(scenario.devices)} devices")
    warm_up_devices(backend, scenario)
    calibration = calibrate_devices(scenario, backend.launcher, run_dir, backend=backend.name,
                                    device_cores=backend.device_cores, socket_ifnames=backend.socket_ifnames,
                                    progress=progress)
    calibration.update(backend.facts)
    return calibration


@dataclass(frozen=True)
class PlanMeasurement:
    plan: Plan
    time_s: float
    """Mean step time (the slowest device's), first step excluded."""
    energy_j: float
    """Mean step energy of all devices together, first step excluded."""


def measure_plans(backend: Backend, scenario: Scenario, plans: Iterable[Plan], run_dir: Path, steps: int = 6,
                  progress: Callable[[PlanMeasurement], None] = lambda measured: None) -> list[PlanMeasurement]:
    """Train each plan for `steps` steps for real and take the mean of every step but the first (which
    pays for starting the plan): the mean, not the median, because a job's time and energy per sample
    are means, and under a CPU quota the steps that find the quota spent are part of the cost (the
    median drops them). Warm the devices up first (`warm_up_devices`)."""
    if steps < 2:
        raise ValueError("measuring a plan needs at least 2 steps (the first is not timed)")
    results = []
    for index, plan in enumerate(plans, start=1):
        job = Job(scenario=scenario, plan=plan, steps=steps, run_dir=run_dir / f"plan{index}",
                  device_cores=backend.device_cores, socket_ifnames=backend.socket_ifnames)
        timed = run_job(job, backend.launcher).steps[1:]
        measured = PlanMeasurement(plan, statistics.fmean(s["time_s"] for s in timed),
                                   statistics.fmean(s["energy_j"] for s in timed))
        progress(measured)
        results.append(measured)
    return results
