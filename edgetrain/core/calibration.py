"""Calibrations: what `edgetrain calibrate` measured on a fleet's devices, as a JSON file.

A calibration holds only measured numbers, each with how it was measured (`how` in the file): compute
time of every model part, sustained CPU rate, idle CPU, activation memory, the optimizer step, the
latency and throughput of every ordered device pair, and per pair the time of an exchange (a message
each way at once). The cost model predicts every plan from it. (A device *profile*, by contrast, is an
entry of the catalog, `edgetrain.core.catalog`: power and memory figures from data sheets.) Calibrations
of the built-in scenarios, measured on this project's testbed, ship with them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from importlib import resources
from pathlib import Path

from edgetrain.core.config import Scenario
from edgetrain.core.errors import UserError
from edgetrain.core.rules import TESTBED_CFS_PERIOD_US

FORMAT = "edgetrain-calibration-v4"
# The same content, from before calibrations had their own name.
LEGACY_FORMAT = "edgetrain-profile-v4"
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
             "(transfer_s: until the receiver has it, one latency for the confirmation taken off, median of 3; "
             "mbps: of the 1 MiB transfer, latency excluded)",
    "exchange_s": "per pair, messages of those sizes sent both ways at once (gloo isend + recv on each "
                  "side), until both have arrived: median of 3",
}




def default_calibration_path(scenario: Scenario) -> str:
    """The calibration shipped with a built-in scenario (measured on this project's testbed)."""
    return str(resources.files("edgetrain") / "scenarios" / "calibrations" / f"{scenario.name}.json")


def load_calibration(path: str) -> dict:
    try:
        calibration = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"calibration {path}: cannot be read ({exc.strerror})") from None
    except json.JSONDecodeError:
        raise UserError(f"calibration {path}: not JSON") from None
    if not isinstance(calibration, dict) or calibration.get("format") not in (FORMAT, LEGACY_FORMAT):
        raise UserError(f"calibration {path}: not an edgetrain calibration of format {FORMAT} "
                        "(run `edgetrain calibrate` to make one)")
    return calibration


def check_calibration_matches(calibration: dict, scenario: Scenario) -> None:
    """A calibration predicts only the model and the devices it measured: same model, every device of the
    scenario measured, and (when it was measured on the testbed) the same CPU shares and links, under the
    testbed's CPU quota period."""
    name = calibration.get("scenario", "?")
    if calibration.get("model") is not None and calibration["model"] != asdict(scenario.model):
        raise UserError(f"the calibration of {name} was measured for another model than scenario {scenario.name}'s")
    missing = [d for d in scenario.device_names if d not in calibration.get("devices", {})]
    if missing:
        raise UserError(f"the calibration of {name} has no measurements of {', '.join(missing)}")
    emulation = calibration.get("emulation", {})
    if emulation.get("backend") == "mininet" and emulation.get("cfs_period_us") != TESTBED_CFS_PERIOD_US:
        period = emulation.get("cfs_period_us")
        measured = f"a {period / 1000:g} ms" if isinstance(period, (int, float)) else "the former 100 ms"
        raise UserError(f"the calibration of {name} was measured on the testbed under {measured} CPU quota period, "
                        f"not today's {TESTBED_CFS_PERIOD_US / 1000:g} ms, so its devices computed at other speeds: "
                        "run `edgetrain calibrate --backend mininet` again")
    emulated = emulation.get("devices", {})
    for device in scenario.devices:
        measured = emulated.get(device.name)
        if measured and (measured["cpu_share"], measured["bandwidth_mbps"]) != (device.cpu_share, device.bandwidth_mbps):
            raise UserError(f"the calibration of {name} measured {device.name} with another CPU share or bandwidth "
                            f"than scenario {scenario.name} gives it")
