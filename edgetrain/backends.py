"""Where a run's shards live: `local` (subprocesses of this machine) or `mininet` (the emulated testbed,
a worker daemon in every host). This glue is the only place that joins emulation and runtime."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from edgetrain.config import Scenario
from edgetrain.errors import UserError


@dataclass
class Backend:
    launcher: object
    device_cores: dict[str, float] = field(default_factory=dict)
    socket_ifnames: dict[str, str] = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    """Merged into the metrics file (emulation settings)."""
    kill_worker: Optional[Callable[[str], None]] = None
    testbed: object = None


def require_mininet() -> None:
    import os
    if os.geteuid() != 0:
        raise UserError("the mininet backend needs root (Mininet creates namespaces, links and cgroups)")
    try:
        import mininet  # noqa: F401
    except ImportError:
        raise UserError("Mininet is not importable here; run `make setup` first") from None


@contextlib.contextmanager
def open_backend(name: str, scenario: Scenario, run_dir: Path, *, seed: int = 0, time_scale: float = 1.0,
                 follow_availability: bool = True, progress: Callable[[str], None] = lambda line: None
                 ) -> Iterator[Backend]:
    if name == "local":
        from runtime.launcher import LocalLauncher
        yield Backend(LocalLauncher(), facts={"backend": "local"})
        return
    if name != "mininet":
        raise UserError(f"unknown backend {name!r} (known: local, mininet)")
    require_mininet()
    from emulation.testbed import Testbed
    from runtime.control import new_token
    from runtime.remote import RemoteLauncher
    token = new_token()
    progress(f"bringing up the emulated testbed for {scenario.name} ({len(scenario.devices)} devices)")
    with Testbed(scenario, run_dir / "testbed", token, time_scale=time_scale, seed=seed,
                 follow_availability=follow_availability, python=sys.executable) as testbed:
        launcher = RemoteLauncher({d.name: testbed.worker_address(d.name) for d in scenario.devices},
                                  token.encode())
        try:
            launcher.connect_all()
            progress("testbed up: " + ", ".join(f"{d}@{ip}" for d, (ip, _) in
                                                ((d.name, testbed.worker_address(d.name)) for d in scenario.devices)))
            yield Backend(launcher,
                          device_cores={d.name: testbed.cores(d.name) for d in scenario.devices},
                          socket_ifnames={d.name: testbed.socket_ifname(d.name) for d in scenario.devices},
                          facts=testbed.facts(), kill_worker=testbed.kill_worker, testbed=testbed)
        finally:
            launcher.close()
