"""`edgetrain cluster check CLUSTER`: before a deployment, what every device of a cluster file says
about itself: reachable, authenticated (the token), its edgetrain version, its GPUs, the energy meter its
shards would use, its free memory, and how far its clock is from the coordinator's."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from edgetrain import __version__
from edgetrain.fleet.cluster import Cluster
from edgetrain.runtime.coordinator.remote import WorkerClient
from edgetrain.runtime.wire.control import ProtocolError, read_token

CLOCK_TOLERANCE_S = 1.0
"""Clock offsets above this are flagged: metrics and availability windows compare times across devices."""


def check_device(name: str, address: tuple[str, int], token: bytes, timeout_s: float = 5.0) -> dict:
    """One device's answers; `ok` False with a `problem` sentence when something is wrong."""
    where = f"{address[0]}:{address[1]}"
    report = {"device": name, "address": where, "reachable": False, "authenticated": False, "ok": False}
    try:
        client = WorkerClient(name, address, token, connect_timeout_s=timeout_s)
    except ProtocolError as exc:
        report.update(reachable=True, problem=f"refused: {exc}")
        return report
    except (OSError, ConnectionError) as exc:
        report["problem"] = f"unreachable ({getattr(exc, 'strerror', None) or exc})"
        return report
    try:
        report.update(reachable=True, authenticated=True)
        sent = time.time()
        state = client.status()
        received = time.time()
    except (ConnectionError, OSError) as exc:
        report["problem"] = f"did not answer a status request ({exc})"
        return report
    finally:
        client.close()
    report.update(version=state.get("version"), protocol=state.get("protocol"), gpus=state.get("gpus", []),
                  meter=state.get("meter"), memory_available_mb=state.get("memory_available_mb"),
                  battery_pct=state.get("battery_pct"), round_trip_s=received - sent,
                  clock_offset_s=state["time"] - (sent + received) / 2)
    problems = []
    if report["version"] != __version__:
        problems.append(f"runs edgetrain {report['version']}, the coordinator {__version__}")
    if abs(report["clock_offset_s"]) > CLOCK_TOLERANCE_S:
        problems.append(f"its clock is {report['clock_offset_s']:+.1f} s off (run NTP on it)")
    report["ok"] = not problems
    if problems:
        report["problem"] = "; ".join(problems)
    return report


def check_cluster(cluster: Cluster, timeout_s: float = 5.0) -> list[dict]:
    token = read_token(cluster.token_file)
    devices = list(cluster.devices.values())
    with ThreadPoolExecutor(max_workers=max(len(devices), 1)) as pool:  # one timeout in all, not one each
        return list(pool.map(lambda d: check_device(d.name, d.address, token, timeout_s), devices))


def describe(report: dict) -> str:
    """One line per device."""
    head = f"{report['device']} at {report['address']}: "
    if not report["authenticated"]:
        return head + report["problem"]
    memory = report["memory_available_mb"]
    parts = [f"edgetrain {report['version']} (protocol {report['protocol']})",
             "GPU " + (", ".join(report["gpus"]) if report["gpus"] else "none"),
             "meter " + (report["meter"] or "profile (no RAPL, NVML or Jetson rails)"),
             f"{memory:,.0f} MiB free" if memory is not None else "free memory unknown",
             f"clock {report['clock_offset_s']:+.3f} s (round trip {report['round_trip_s'] * 1e3:.0f} ms)"]
    if report["battery_pct"] is not None:
        parts.append(f"battery {report['battery_pct']:.0f}%")
    return head + ("ok: " if report["ok"] else f"PROBLEM ({report['problem']}): ") + ", ".join(parts)
