"""`edgetrain emulate check`: does the testbed really give each device what the scenario says?

Link throughput is measured with real TCP traffic from the device's host to a sink in the root
namespace (its upload, through the htb shaper); the CPU share with busy loops inside the host, read
from the host's cgroup CPU time. Targets: links within 10%, CPU shares within 15%.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from typing import Callable

from edgetrain.core.config import Scenario
from edgetrain.emulation.network import EdgeNetwork

BANDWIDTH_TOLERANCE = 0.10
CPU_TOLERANCE = 0.15
WARMUP_S = 0.5


def _measure_bandwidth(network: EdgeNetwork, device: str, seconds: float) -> float:
    """Mbit/s received from the device, TCP slow start excluded."""
    server = socket.create_server((network.coordinator_ip, 0))
    port = server.getsockname()[1]
    result: dict[str, float] = {}

    def sink():
        conn, _ = server.accept()
        with conn:
            start = time.monotonic()
            counted, first = 0, None
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    break
                now = time.monotonic()
                if now - start >= WARMUP_S:
                    if first is None:
                        first = now
                    else:
                        counted += len(data)
            if first is not None and now > first:
                result["mbps"] = counted * 8 / (now - first) / 1e6

    thread = threading.Thread(target=sink, daemon=True)
    thread.start()
    sender = network.popen(device, [sys.executable, "-m", "edgetrain.emulation.probes", "send", network.coordinator_ip,
                                    str(port), str(seconds + WARMUP_S)])
    sender.wait(timeout=seconds + 30)
    thread.join(timeout=10)
    server.close()
    return result.get("mbps", 0.0)


def _measure_cpu_share(network: EdgeNetwork, device: str, seconds: float) -> float:
    """Fraction of the whole machine the device's host got while trying to use all of it."""
    cores = os.cpu_count() or 1
    busy = [network.popen(device, [sys.executable, "-m", "edgetrain.emulation.probes", "busy", str(seconds + 1.0)])
            for _ in range(cores)]
    time.sleep(1.0)  # interpreters start and settle
    cpu0, t0 = network.cpu_seconds(device), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = network.cpu_seconds(device), time.monotonic()
    for process in busy:
        process.wait(timeout=30)
    return (cpu1 - cpu0) / ((t1 - t0) * cores)


def check_scenario(scenario: Scenario, seconds: float = 3.0, progress: Callable[[str], None] = lambda s: None) -> dict:
    report = {"scenario": scenario.name, "devices": {}, "targets": {
        "bandwidth_within": BANDWIDTH_TOLERANCE, "cpu_share_within": CPU_TOLERANCE}}
    with EdgeNetwork(scenario) as network:
        report["delay_emulated"] = network.delay_emulated
        for device in scenario.devices:
            progress(f"{device.name}: measuring link throughput ({seconds:.0f} s)")
            mbps = _measure_bandwidth(network, device.name, seconds)
            progress(f"{device.name}: measuring CPU share ({seconds:.0f} s)")
            share = _measure_cpu_share(network, device.name, seconds)
            bw_error = abs(mbps - device.bandwidth_mbps) / device.bandwidth_mbps
            cpu_error = abs(share - device.cpu_share) / device.cpu_share
            report["devices"][device.name] = {
                "bandwidth_mbps": {"configured": device.bandwidth_mbps, "measured": round(mbps, 3),
                                   "error": round(bw_error, 4), "within_target": bw_error <= BANDWIDTH_TOLERANCE},
                "cpu_share": {"configured": device.cpu_share, "measured": round(share, 4),
                              "error": round(cpu_error, 4), "within_target": cpu_error <= CPU_TOLERANCE},
            }
            progress(f"{device.name}: {mbps:.1f} of {device.bandwidth_mbps} Mbit/s, "
                     f"CPU {share:.3f} of {device.cpu_share}")
    report["all_within_target"] = all(d["bandwidth_mbps"]["within_target"] and d["cpu_share"]["within_target"]
                                      for d in report["devices"].values())
    return report
