"""Where a run's shards live: `local` (subprocesses of this machine), `mininet` (the emulated testbed,
a worker daemon in every host) or `cluster` (real devices, each running `edgetrain worker`, listed in a
cluster file). This glue is the only place that joins emulation and runtime."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from edgetrain.core.config import Scenario
from edgetrain.core.errors import UserError


@dataclass
class Backend:
    name: str
    """local, mininet or cluster."""
    launcher: object
    device_cores: dict[str, float] = field(default_factory=dict)
    socket_ifnames: dict[str, str] = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    """Merged into the metrics file (emulation settings)."""
    kill_worker: Optional[Callable[[str], None]] = None
    testbed: object = None
    online: Callable[[list[str]], list[bool]] = lambda names: [True] * len(names)
    """Which devices are there now (for a scheduler's decisions)."""
    battery: Callable[[list[str]], list[Optional[float]]] = lambda names: [None] * len(names)
    """Battery charge in percent per device, None on mains power."""
    ready: Callable[[list[str]], list[str]] = lambda names: list(names)
    """Of these devices, those that can start a shard at once (warm: no import to wait for)."""


def require_mininet() -> None:
    """Refuse, in one sentence, what cannot open a testbed here (without importing mininet: only
    edgetrain.emulation does)."""
    import importlib.util
    import os
    if os.geteuid() != 0:
        raise UserError("the mininet backend needs root (Mininet creates namespaces, links and cgroups)")
    if importlib.util.find_spec("mininet") is None:
        raise UserError("Mininet is not importable here; run `make setup` first")


@contextlib.contextmanager
def open_backend(name: str, scenario: Scenario, run_dir: Path, *, seed: int = 0, time_scale: float = 1.0,
                 follow_availability: bool = True, progress: Callable[[str], None] = lambda line: None,
                 cluster=None, busy_devices: tuple = ()) -> Iterator[Backend]:
    """`busy_devices`: mininet only, devices that run a CPU-bound process of their own beside the worker
    (`Testbed.busy_devices`)."""
    if busy_devices and name != "mininet":
        raise UserError("busy devices are emulated on the mininet testbed only")
    if name == "local":
        from edgetrain.runtime.coordinator.launcher import LocalLauncher
        yield Backend("local", LocalLauncher(), facts={"backend": "local"})
        return
    if name == "cluster":
        with _cluster_backend(cluster, progress) as backend:
            yield backend
        return
    if name != "mininet":
        raise UserError(f"unknown backend {name!r} (known: local, mininet, cluster)")
    require_mininet()
    from edgetrain.emulation.testbed import Testbed
    from edgetrain.runtime.coordinator.remote import RemoteLauncher
    from edgetrain.runtime.wire.control import new_token
    token = new_token()
    progress(f"bringing up the emulated testbed for {scenario.name} ({len(scenario.devices)} devices"
             + (f"; busy with work of their own: {', '.join(busy_devices)}" if busy_devices else "") + ")")
    unknown = sorted(set(busy_devices) - set(scenario.device_names))
    if unknown:
        raise UserError(f"busy device {unknown[0]!r} is not a device of {scenario.name} "
                        f"({', '.join(scenario.device_names)})")
    with Testbed(scenario, run_dir / "testbed", token, time_scale=time_scale, seed=seed,
                 follow_availability=follow_availability, python=sys.executable,
                 busy_devices=tuple(busy_devices)) as testbed:
        launcher = RemoteLauncher({d.name: testbed.worker_address(d.name) for d in scenario.devices},
                                  token.encode())
        try:
            launcher.connect_all()
            progress("testbed up: " + ", ".join(f"{d}@{ip}" for d, (ip, _) in
                                                ((d.name, testbed.worker_address(d.name)) for d in scenario.devices)))
            yield Backend("mininet", launcher,
                          device_cores={d.name: testbed.cores(d.name) for d in scenario.devices},
                          socket_ifnames={d.name: testbed.socket_ifname(d.name) for d in scenario.devices},
                          facts=testbed.facts(), kill_worker=testbed.kill_worker, testbed=testbed,
                          online=lambda names: [testbed.online[n] for n in names],
                          battery=lambda names: [testbed.battery_pct.get(n) for n in names],
                          ready=launcher.ready_devices)
        finally:
            launcher.close()


@contextlib.contextmanager
def _cluster_backend(cluster, progress: Callable[[str], None]) -> Iterator[Backend]:
    """Real devices: connect to the worker daemons a cluster file lists (edgetrain/cluster.py)."""
    from edgetrain.runtime.coordinator.remote import RemoteLauncher
    from edgetrain.runtime.wire.control import read_token
    if cluster is None:
        raise UserError("the cluster backend needs a cluster file (--cluster FILE)")
    try:
        token = read_token(cluster.token_file)
    except ValueError as exc:
        raise UserError(f"{cluster.source}: token_file: {exc}") from None
    launcher = RemoteLauncher({d.name: d.address for d in cluster.devices.values()}, token)
    try:
        launcher.connect_all(timeout_s=5.0)
        reached = sorted(launcher.clients)
        for device, why in launcher.refused.items():
            progress(f"cluster: {device} refused: {why}")
        if not reached:
            raise UserError(f"{cluster.source}: no worker answered at "
                            + ", ".join(f"{d.address[0]}:{d.address[1]}" for d in cluster.devices.values()))
        progress(f"cluster: {len(reached)} of {len(cluster.devices)} workers answered ({', '.join(reached)})")

        def battery(names: list[str]) -> list[Optional[float]]:
            return [launcher.clients[n].state.get("battery_pct") if n in launcher.clients else None for n in names]

        yield Backend("cluster", launcher, socket_ifnames={d.name: d.socket_ifname for d in cluster.devices.values()
                                                if d.socket_ifname},
                      facts={"backend": "cluster", "cluster": cluster.source},
                      online=lambda names: [n in set(launcher.available_devices(names)) for n in names],
                      battery=battery, ready=launcher.ready_devices)
    finally:
        launcher.close()
