"""The profile energy model, shared by the runtime's profile meter and the emulated batteries."""

from __future__ import annotations


def profile_energy_j(*, idle_w: float, active_w: float, tx_j_per_byte: float, rx_j_per_byte: float,
                     cores: float, wall_s: float, cpu_s: float, bytes_sent: int, bytes_recv: int) -> float:
    """Idle power all the time, the active increment while the CPU is busy, and the radio per byte.
    `cores` is the device's CPU capacity: CPU seconds per wall second at full load."""
    busy_s = min(cpu_s / cores, wall_s)
    return idle_w * wall_s + (active_w - idle_w) * busy_s + tx_j_per_byte * bytes_sent + rx_j_per_byte * bytes_recv
