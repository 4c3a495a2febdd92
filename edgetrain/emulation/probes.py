"""Tiny load generators that run inside emulated hosts for `edgetrain emulate check`.

    python -m edgetrain.emulation.probes send HOST PORT SECONDS   # push TCP bytes as fast as the link allows
    python -m edgetrain.emulation.probes busy SECONDS             # spin one CPU
"""

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


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        busy(float(sys.argv[2]))
