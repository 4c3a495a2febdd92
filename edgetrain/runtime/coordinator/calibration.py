"""The coordinator's side of `edgetrain calibrate`: run the calibration job on every device of a scenario and
gather what they measured into a calibration (format: edgetrain.core.calibration)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from edgetrain.core.calibration import FORMAT, HOW
from edgetrain.core.config import Scenario
from edgetrain.core.plans import Plan
from edgetrain.runtime.coordinator.job import Job, ProgressFn, run_job
from edgetrain.runtime.coordinator.launcher import Launcher


def calibrate_devices(scenario: Scenario, launcher: Launcher, run_dir: Path, *, backend: str, seed: int = 0,
                    device_cores: dict[str, float] | None = None, socket_ifnames: dict[str, str] | None = None,
                    progress: ProgressFn = lambda line: None) -> dict:
    devices = tuple(scenario.device_names)
    plan = Plan("local", devices) if len(devices) == 1 else Plan("dp", devices)  # just the rank order
    job = Job(scenario=scenario, plan=plan, steps=1, run_dir=run_dir, seed=seed, mode="calibrate",
              device_cores=device_cores or {}, socket_ifnames=socket_ifnames or {})
    started = time.time()
    metrics = run_job(job, launcher, progress)
    links = {}
    for device in devices:
        for pair, measured in metrics.measurements[device].get("links", {}).items():
            src, dst = (devices[int(i)] for i in pair.split("->"))
            links[f"{src}->{dst}"] = measured
    return {
        "format": FORMAT,
        "scenario": scenario.name,
        "backend": backend,
        "created": started,
        "model": {k: v for k, v in asdict(scenario.model).items()},
        "devices": {
            device: {
                "profile": scenario.device(device).profile,
                "cores": (device_cores or {}).get(device, 1.0),
                **metrics.measurements[device]["compute"],
            }
            for device in devices
        },
        "links": links,
        "how": HOW,
    }
