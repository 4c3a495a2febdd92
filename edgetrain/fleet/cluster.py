"""Cluster files: where the worker daemons of real devices listen.

    # my-home.cluster.yaml
    scenario: smart-home             # the fleet's scenario: model, objective, device profiles
    token_file: edgetrain.token      # the shared secret every worker was started with
    devices:
      laptop:    {address: 192.168.1.20:7077, socket_ifname: wlan0}
      orin-nano: {address: 192.168.1.31:7077}

Every device of the scenario needs an address (a scenario lists the devices that may take part; a
cluster says where they are). Relative paths are relative to the cluster file. Each device runs
`edgetrain worker --listen ADDR:PORT --token-file F --device NAME`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from edgetrain.core.config import Scenario
from edgetrain.core.errors import UserError
from edgetrain.core.scenario import load_scenario


@dataclass(frozen=True)
class ClusterDevice:
    name: str
    address: tuple[str, int]
    socket_ifname: Optional[str] = None
    """The interface gloo binds on that device (its own choice when absent)."""


@dataclass(frozen=True)
class Cluster:
    source: str
    scenario: Scenario
    token_file: str
    devices: dict[str, ClusterDevice]


def _address(text: object, where: str) -> tuple[str, int]:
    if not isinstance(text, str) or text.count(":") != 1:
        raise UserError(f"{where}: address must be HOST:PORT, got {text!r}")
    host, port = text.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{where}: address must be HOST:PORT with a port in 1..65535, got {text!r}")
    return host, int(port)


def load_cluster(path: str, scenario_override: Optional[str] = None) -> Cluster:
    """Load and check a cluster file; every problem is one sentence naming the file and the key."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror})") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise UserError(f"{path}: not a YAML file") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: must be a mapping with scenario, token_file and devices")
    unknown = set(data) - {"scenario", "token_file", "devices"}
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (known: scenario, token_file, devices)")
    scenario_ref = scenario_override or data.get("scenario")
    if scenario_ref and not scenario_override and (file.parent / str(scenario_ref)).is_file():
        scenario_ref = str(file.parent / str(scenario_ref))
    scenario = load_scenario(scenario_ref)
    token = data.get("token_file")
    if not isinstance(token, str) or not token:
        raise UserError(f"{path}: token_file: required, the file holding the workers' shared secret")
    token_path = Path(token) if Path(token).is_absolute() else file.parent / token
    devices_data = data.get("devices")
    if not isinstance(devices_data, dict) or not devices_data:
        raise UserError(f"{path}: devices: required, a mapping of device name to {{address: HOST:PORT}}")
    devices = {}
    for name, entry in devices_data.items():
        where = f"{path}: devices.{name}"
        if name not in scenario.device_names:
            raise UserError(f"{where}: not a device of scenario {scenario.name!r} "
                            f"(its devices: {', '.join(scenario.device_names)})")
        if isinstance(entry, str):
            entry = {"address": entry}
        if not isinstance(entry, dict) or set(entry) - {"address", "socket_ifname"}:
            raise UserError(f"{where}: must be {{address: HOST:PORT, socket_ifname: IFACE (optional)}}")
        ifname = entry.get("socket_ifname")
        if ifname is not None and not isinstance(ifname, str):
            raise UserError(f"{where}.socket_ifname: must be an interface name")
        devices[name] = ClusterDevice(name, _address(entry.get("address"), f"{where}.address"), ifname)
    missing = [d for d in scenario.device_names if d not in devices]
    if missing:
        raise UserError(f"{path}: devices: no address for {', '.join(missing)} of scenario {scenario.name!r}")
    return Cluster(str(file), scenario, str(token_path), devices)
