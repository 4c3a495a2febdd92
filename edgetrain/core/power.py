"""The profile energy model, shared by the runtime's profile meter and the emulated batteries, and how a
power mode changes its figures."""

from __future__ import annotations


def profile_energy_j(*, idle_w: float, active_w: float, tx_j_per_byte: float, rx_j_per_byte: float,
                     cores: float, wall_s: float, cpu_s: float, bytes_sent: int, bytes_recv: int) -> float:
    """Idle power all the time, the active increment while the CPU is busy, and the radio per byte.
    `cores` is the device's CPU capacity: CPU seconds per wall second at full load."""
    busy_s = min(cpu_s / cores, wall_s)
    return idle_w * wall_s + (active_w - idle_w) * busy_s + tx_j_per_byte * bytes_sent + rx_j_per_byte * bytes_recv


def in_power_mode(*, idle_w: float, active_w: float, cores: float, speed: float, power: float) -> tuple[float, float]:
    """(active_w, cores) of a device in a lower power mode: `speed` of its compute capacity (CPU seconds
    per wall second at full load) at `power` of its compute power above idle; idle and radio stay. So a
    full-load second in the mode costs idle + power x (active - idle), and the same work takes 1/speed
    the time: the cost model's pricing of a mode (envs/costmodel.py)."""
    return idle_w + power * (active_w - idle_w), cores * speed
