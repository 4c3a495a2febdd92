"""Tiny load generators that run inside emulated hosts for `edgetrain emulate check`.

    python -m edgetrain.emulation.probes send HOST PORT SECONDS   # push TCP bytes as fast as the link allows
    python -m edgetrain.emulation.probes busy SECONDS             # spin one CPU
    python -m edgetrain.emulation.probes bursts CPU_MS COUNT GAP_MS  # short bursts of work, idle between
"""

import json
import socket
import sys
import time


def send(host: str, port: int, seconds: float) -> None:
    chunk = b"\0" * (1 << 16)
    with socket.create_connection((host, port), timeout=10) as sock:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sock.sendall(chunk)


def busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def bursts(cpu_ms: float, count: int, gap_ms: float) -> None:
    """Print [cpu_s, wall_s] of each burst: spin until this thread has used cpu_ms of CPU time, then idle
    gap_ms (a short training step between decisions, or between the steps of a lightly loaded device)."""
    times = []
    for _ in range(count):
        time.sleep(gap_ms / 1000)
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        while time.thread_time() - cpu0 < cpu_ms / 1000:
            pass
        times.append([time.thread_time() - cpu0, time.perf_counter() - wall0])
    print(json.dumps(times))


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif sys.argv[1] == "bursts":
        bursts(float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        busy(float(sys.argv[2]))
