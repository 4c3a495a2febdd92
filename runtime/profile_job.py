"""`edgetrain profile`: run the profiling job on every device of a scenario and write what they measured."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from edgetrain.config import Scenario
from edgetrain.plans import Plan
from runtime.coordinator import Job, ProgressFn, run_job
from runtime.launcher import Launcher

FORMAT = "edgetrain-profile-v4"
HOW = {
    "compute": "forward and backward CPU time (time.process_time of the shard) of each model part "
               "(embeddings, one Transformer block, output head + loss), median of 5 runs after a warm-up, on "
               "the device itself, one device at a time, for micro-batch rows x sequence lengths",
    "sustained_cpu_rate": "shard CPU seconds per wall second over 2 s of back-to-back block forward+backward "
                          "passes: wall time = CPU time / this rate (below 1 under an emulated CPU quota)",
    "device_cpu_per_compute_s": "the device's CPU seconds (cgroup on the testbed, the process elsewhere) per "
                                "wall second during those 2 s",
    "activation_bytes": "bytes of every tensor autograd saved for the backward pass (saved_tensors_hooks)",
    "optimizer": "CPU time of one AdamW step over the whole model, median of 5",
    "idle_cpu_per_s": "CPU seconds the device used per wall second while the shard slept for 1 s",
    "links": "gloo send/recv between every ordered pair of devices: 10 one-float round trips (latency = "
             "median / 2), then tensors of 16 KiB, 128 KiB and 1 MiB whose arrival the receiver confirms "
             "(transfer_s: until the receiver has it, one latency for the confirmation taken off; mbps: "
             "of the 1 MiB transfer, latency excluded)",
    "collectives": "gloo all-reduce over all the devices, in scenario order, of a tensor the size of all "
                   "gradients and of one batch of activations: median of 5 after a warm-up (recorded to check "
                   "the ring model against; scaling other rings by it made predictions worse, so it is not used)",
}


def profile_devices(scenario: Scenario, launcher: Launcher, run_dir: Path, *, backend: str, seed: int = 0,
                    device_cores: dict[str, float] | None = None, socket_ifnames: dict[str, str] | None = None,
                    progress: ProgressFn = lambda line: None) -> dict:
    devices = tuple(scenario.device_names)
    plan = Plan("local", devices) if len(devices) == 1 else Plan("dp", devices)  # just the rank order
    job = Job(scenario=scenario, plan=plan, steps=1, run_dir=run_dir, seed=seed, mode="profile",
              device_cores=device_cores or {}, socket_ifnames=socket_ifnames or {})
    started = time.time()
    metrics = run_job(job, launcher, progress)
    links = {}
    for device in devices:
        for pair, measured in metrics.profiles[device].get("links", {}).items():
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
                **metrics.profiles[device]["compute"],
            }
            for device in devices
        },
        "links": links,
        "collectives": metrics.profiles[devices[0]].get("collectives"),
        "how": HOW,
    }
