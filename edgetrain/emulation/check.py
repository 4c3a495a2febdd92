"""`edgetrain emulate check`: does the testbed really give each device what the scenario says?

Link throughput is measured with real TCP traffic from the device's host to a sink in the root
namespace (its upload, through the htb shaper); the CPU share with busy loops inside the host, read
from the host's cgroup CPU time, over seconds and over 10 ms steps (a short training step must run at
the device's speed too, not at this machine's until the CFS period's quota is spent: see
network.DEFAULT_CFS_PERIOD_US). Targets: links within 10%, CPU shares within 15%.

A 10 ms burst that starts after the host sat idle is still faster than its share (it finds the
period's whole quota unspent; CFS will not take a quota under 1 ms): reported as `after_idle`, and not
counted in `all_within_target`.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable

from edgetrain.core.config import Scenario
from edgetrain.emulation.network import DEFAULT_CFS_PERIOD_US, EdgeNetwork

BANDWIDTH_TOLERANCE = 0.10
CPU_TOLERANCE = 0.15
WARMUP_S = 0.5
SHORT_STEP_S = 0.010
SHORT_STEPS = 12
IDLE_GAP_S = 0.1


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


def _measure_short_steps(network: EdgeNetwork, device: str, cpu_share: float, gap_s: float) -> float:
    """Median share of the machine one thread got over bursts that should last SHORT_STEP_S each."""
    cores = os.cpu_count() or 1
    cpu_ms = SHORT_STEP_S * 1000 * _single_thread_share(cpu_share) * cores
    probe = network.popen(device, [sys.executable, "-m", "edgetrain.emulation.probes", "bursts", str(cpu_ms),
                                   str(SHORT_STEPS), str(gap_s * 1000)], stdout=subprocess.PIPE, text=True)
    out, _ = probe.communicate(timeout=60 + SHORT_STEPS * (gap_s + 1))
    return statistics.median(cpu / (wall * cores) for cpu, wall in json.loads(out))


def _single_thread_share(cpu_share: float) -> float:
    """One busy thread gets the device's share, or one whole core when the share is more than a core."""
    return min(cpu_share, 1.0 / (os.cpu_count() or 1))


def _judged(configured: float, measured: float, tolerance: float) -> dict:
    error = abs(measured - configured) / configured
    return {"configured": configured, "measured": round(measured, 4), "error": round(error, 4),
            "within_target": error <= tolerance}


def check_scenario(scenario: Scenario, seconds: float = 3.0, progress: Callable[[str], None] = lambda s: None,
                   cfs_period_us: int = DEFAULT_CFS_PERIOD_US) -> dict:
    report = {"scenario": scenario.name, "devices": {}, "cfs_period_us": cfs_period_us, "targets": {
        "bandwidth_within": BANDWIDTH_TOLERANCE, "cpu_share_within": CPU_TOLERANCE}}
    with EdgeNetwork(scenario, cfs_period_us=cfs_period_us) as network:
        report["delay_emulated"] = network.delay_emulated
        for device in scenario.devices:
            progress(f"{device.name}: measuring link throughput ({seconds:.0f} s)")
            mbps = _measure_bandwidth(network, device.name, seconds)
            progress(f"{device.name}: measuring CPU share ({seconds:.0f} s)")
            share = _measure_cpu_share(network, device.name, seconds)
            progress(f"{device.name}: measuring {SHORT_STEP_S * 1000:.0f} ms steps")
            steps = _measure_short_steps(network, device.name, device.cpu_share, gap_s=0.0)
            after_idle = _measure_short_steps(network, device.name, device.cpu_share, gap_s=IDLE_GAP_S)
            single = _single_thread_share(device.cpu_share)
            report["devices"][device.name] = {
                "bandwidth_mbps": _judged(device.bandwidth_mbps, mbps, BANDWIDTH_TOLERANCE),
                "cpu_share": _judged(device.cpu_share, share, CPU_TOLERANCE),
                # One thread's share: a device with more than a core is judged on the core it can use.
                "cpu_share_short_steps": _judged(single, steps, CPU_TOLERANCE),
                "cpu_share_after_idle": _judged(single, after_idle, CPU_TOLERANCE),
            }
            progress(f"{device.name}: {mbps:.1f} of {device.bandwidth_mbps} Mbit/s, "
                     f"CPU {share:.3f} of {device.cpu_share} (10 ms steps {steps:.3f} of {single:.3f}, "
                     f"after idle {after_idle:.3f})")
    counted = ("bandwidth_mbps", "cpu_share", "cpu_share_short_steps")
    report["all_within_target"] = all(d[key]["within_target"] for d in report["devices"].values() for key in counted)
    return report
