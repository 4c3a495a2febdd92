"""Power and memory profiles of emulated edge devices.

Every number in this catalog is a :class:`Figure`: a value together with the
place it comes from (a vendor data sheet or a published measurement).  Where
no published figure exists the ``source`` string says so and explains what the
value is based on; such values are estimates and are labelled as such.

How a profile is used by the energy meter
-----------------------------------------
A profile energy meter charges a run on an emulated device as::

    energy_J = idle_w * wall_seconds
             + (active_w - idle_w) * cpu_seconds / cpu_cores
             + radio_tx_j_per_byte * bytes_sent
             + radio_rx_j_per_byte * bytes_recv

so the two power figures have these meanings:

``idle_power_w``
    Whole-board power (W) while the device is switched on but doing nothing.
    It is paid for every second of wall-clock time.

``active_power_w``
    Whole-board power (W) with *all* CPU cores busy (or, where only a vendor
    figure exists, the maximum power mode's budget).  The difference
    ``active - idle`` is the extra power of a fully loaded CPU, so one
    CPU-second on one core costs ``(active - idle) / cpu_cores`` joules on
    top of the idle floor.

``radio_tx_j_per_byte`` / ``radio_rx_j_per_byte``
    Wi-Fi energy per byte sent / received (J/byte), on top of the idle floor.

Caveats: vendor "power mode" figures for NVIDIA Jetson modules are module
power *budgets* (the cap enforced by nvpmodel), not measured whole-board
draws; they are used as the active figure because no vendor whole-board
figure exists.  Idle figures for Jetson boards are not published by NVIDIA
and are estimates, marked as such.
"""

import math
from dataclasses import dataclass, fields

__all__ = [
    "CATALOG",
    "DeviceProfile",
    "Figure",
    "UnknownProfileError",
    "get_profile",
]


@dataclass(frozen=True)
class Figure:
    """A number and where it comes from."""

    value: float
    source: str  # citation: data sheet name/number or published measurement


@dataclass(frozen=True)
class DeviceProfile:
    """Power, radio and memory figures of one emulated device."""

    name: str  # catalog key, e.g. "jetson-nano"
    description: str
    idle_power_w: Figure  # whole-board power when idle (W)
    active_power_w: Figure  # whole-board power, all CPU cores busy (W)
    radio_tx_j_per_byte: Figure  # Wi-Fi energy per byte sent (J/byte)
    radio_rx_j_per_byte: Figure  # Wi-Fi energy per byte received (J/byte)
    memory_mb: Figure  # RAM in MiB
    cpu_cores: Figure  # number of CPU cores

    def __post_init__(self) -> None:
        for field in fields(self):
            figure = getattr(self, field.name)
            if not isinstance(figure, Figure):
                continue
            value = figure.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(
                    f"profile {self.name!r}: {field.name} must be a number, "
                    f"got {value!r}"
                )
            if not math.isfinite(value) or value <= 0:
                raise ValueError(
                    f"profile {self.name!r}: {field.name} must be finite and "
                    f"> 0, got {value!r}"
                )
        if self.active_power_w.value < self.idle_power_w.value:
            raise ValueError(
                f"profile {self.name!r}: active_power_w "
                f"({self.active_power_w.value} W) must be >= idle_power_w "
                f"({self.idle_power_w.value} W)"
            )


class UnknownProfileError(KeyError):
    """Raised by :func:`get_profile` for a name not in :data:`CATALOG`."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return (
            f"unknown device profile {self.name!r}; "
            f"known profiles: {', '.join(self.known)}"
        )


# ---------------------------------------------------------------------------
# Wi-Fi energy per byte
# ---------------------------------------------------------------------------
# Huang et al., MobiSys 2012, fit a Wi-Fi power model on an Android phone:
# uplink alpha_u = 283.17 mW/Mbps, downlink alpha_d = 137.01 mW/Mbps.
# 283.17 mW per Mbit/s = 283.17e-3 J/s / 1e6 bit/s = 2.8317e-7 J/bit,
# times 8 bit/byte = 2.26536e-6 J/byte (downlink: 1.09608e-6 J/byte).
_HUANG_2012 = (
    'J. Huang, F. Qian, A. Gerber, Z. M. Mao, S. Sen, O. Spatscheck, "A Close '
    'Examination of Performance and Power Characteristics of 4G LTE '
    'Networks", ACM MobiSys 2012: Wi-Fi power model measured on an Android '
    "smartphone"
)
_BITS_PER_BYTE = 8
_WIFI_UP_MW_PER_MBPS = 283.17
_WIFI_DOWN_MW_PER_MBPS = 137.01
_WIFI_TX_J_PER_BYTE = _WIFI_UP_MW_PER_MBPS * 1e-3 / 1e6 * _BITS_PER_BYTE
_WIFI_RX_J_PER_BYTE = _WIFI_DOWN_MW_PER_MBPS * 1e-3 / 1e6 * _BITS_PER_BYTE


def _wifi_tx(device_note: str) -> Figure:
    return Figure(
        _WIFI_TX_J_PER_BYTE,
        f"{device_note}{_HUANG_2012}, uplink 283.17 mW/Mbps "
        f"= 2.8317e-7 J/bit = {_WIFI_TX_J_PER_BYTE:.5e} J/byte",
    )


def _wifi_rx(device_note: str) -> Figure:
    return Figure(
        _WIFI_RX_J_PER_BYTE,
        f"{device_note}{_HUANG_2012}, downlink 137.01 mW/Mbps "
        f"= 1.3701e-7 J/bit = {_WIFI_RX_J_PER_BYTE:.5e} J/byte",
    )


_NO_WIFI_FIGURE = (
    "no device-specific Wi-Fi energy-per-byte figure published; "
    "smartphone Wi-Fi model applied as an estimate: "
)


# ---------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------
_JETSON_IDLE_NOTE = (
    "estimate, not a measurement: NVIDIA publishes no idle power figure "
    "for this board"
)

_PROFILES: tuple[DeviceProfile, ...] = (
    DeviceProfile(
        name="jetson-nano",
        description=(
            "NVIDIA Jetson Nano (4 GB) developer kit: 4x Cortex-A57, "
            "128-core Maxwell GPU, MAXN (10 W) mode"
        ),
        idle_power_w=Figure(
            1.5,
            f"{_JETSON_IDLE_NOTE}; chosen well below the 5 W power mode "
            "budget of the NVIDIA Jetson Nano System-on-Module Data Sheet "
            "DA-09366-001",
        ),
        active_power_w=Figure(
            10.0,
            "NVIDIA Jetson Nano System-on-Module Data Sheet DA-09366-001 and "
            "L4T Development Guide power-mode table: MaxN mode power budget "
            "10 W (4 cores online, CPU max 1479 MHz); the other mode is 5 W "
            "(2 cores, 918 MHz). Module budget, not a measured board draw",
        ),
        radio_tx_j_per_byte=_wifi_tx(
            "no device-specific figure published (the developer kit has no "
            "built-in Wi-Fi); smartphone Wi-Fi model applied as an estimate: "
        ),
        radio_rx_j_per_byte=_wifi_rx(
            "no device-specific figure published (the developer kit has no "
            "built-in Wi-Fi); smartphone Wi-Fi model applied as an estimate: "
        ),
        memory_mb=Figure(
            4096,
            "NVIDIA Jetson Nano System-on-Module Data Sheet DA-09366-001: "
            "4 GB 64-bit LPDDR4",
        ),
        cpu_cores=Figure(
            4,
            "NVIDIA Jetson Nano System-on-Module Data Sheet DA-09366-001: "
            "quad-core ARM Cortex-A57 MPCore",
        ),
    ),
    DeviceProfile(
        name="jetson-tx2",
        description=(
            "NVIDIA Jetson TX2 (8 GB): 2x Denver 2 + 4x Cortex-A57, "
            "256-core Pascal GPU, Max-P (15 W) mode"
        ),
        idle_power_w=Figure(
            2.0,
            f"{_JETSON_IDLE_NOTE}; chosen well below the 7.5 W Max-Q budget "
            "of the NVIDIA Jetson TX2 System-on-Module Data Sheet",
        ),
        active_power_w=Figure(
            15.0,
            "NVIDIA Jetson TX2 System-on-Module Data Sheet (Pascal GPU + "
            "ARMv8 + 8GB LPDDR4 + 32GB eMMC + WLAN/BT): module power "
            "7.5 W (Max-Q) / 15 W (Max-P); Max-P used. Module budget, not a "
            "measured board draw",
        ),
        radio_tx_j_per_byte=_wifi_tx(_NO_WIFI_FIGURE),
        radio_rx_j_per_byte=_wifi_rx(_NO_WIFI_FIGURE),
        memory_mb=Figure(
            8192,
            "NVIDIA Jetson TX2 System-on-Module Data Sheet: 8 GB 128-bit "
            "LPDDR4",
        ),
        cpu_cores=Figure(
            6,
            "NVIDIA Jetson TX2 System-on-Module Data Sheet: dual-core "
            "Denver 2 cluster + quad-core ARM Cortex-A57 cluster",
        ),
    ),
    DeviceProfile(
        name="jetson-xavier-nx",
        description=(
            "NVIDIA Jetson Xavier NX (8 GB): 6x Carmel, 384-core Volta GPU, "
            "15 W mode"
        ),
        idle_power_w=Figure(
            3.0,
            f"{_JETSON_IDLE_NOTE}; chosen well below the 10 W mode budget of "
            "the NVIDIA Jetson Xavier NX System-on-Module Data Sheet",
        ),
        active_power_w=Figure(
            15.0,
            "NVIDIA Jetson Xavier NX System-on-Module Data Sheet: power "
            "modes 10 W and 15 W; 15 W used (20 W modes added in later "
            "JetPack releases are not modelled). Module budget, not a "
            "measured board draw",
        ),
        radio_tx_j_per_byte=_wifi_tx(_NO_WIFI_FIGURE),
        radio_rx_j_per_byte=_wifi_rx(_NO_WIFI_FIGURE),
        memory_mb=Figure(
            8192,
            "NVIDIA Jetson Xavier NX System-on-Module Data Sheet: 8 GB "
            "128-bit LPDDR4x",
        ),
        cpu_cores=Figure(
            6,
            "NVIDIA Jetson Xavier NX System-on-Module Data Sheet: six NVIDIA "
            "Carmel ARMv8.2 cores (3x dual-core clusters)",
        ),
    ),
    DeviceProfile(
        name="jetson-orin-nano",
        description=(
            "NVIDIA Jetson Orin Nano (8 GB): 6x Cortex-A78AE, 1024-core "
            "Ampere GPU, 15 W mode"
        ),
        idle_power_w=Figure(
            3.0,
            f"{_JETSON_IDLE_NOTE}; a user on the NVIDIA developer forum "
            '("Jetson Orin Nano 8GB - Lowest Theoretical Operating Power '
            'Consumption") measured 2.6 W for the whole developer kit '
            "(Joulescope) only after disabling PCIe, display and camera "
            "blocks, so stock idle is taken as somewhat higher",
        ),
        active_power_w=Figure(
            15.0,
            "NVIDIA Jetson Orin Nano Series Data Sheet: power modes 7 W and "
            "15 W for the 8 GB module; 15 W used (the 25 W / MAXN SUPER "
            "modes of JetPack 6.2 are not modelled). Module budget, not a "
            "measured board draw",
        ),
        radio_tx_j_per_byte=_wifi_tx(_NO_WIFI_FIGURE),
        radio_rx_j_per_byte=_wifi_rx(_NO_WIFI_FIGURE),
        memory_mb=Figure(
            8192,
            "NVIDIA Jetson Orin Nano Series Data Sheet: Orin Nano 8GB, "
            "8 GB 128-bit LPDDR5",
        ),
        cpu_cores=Figure(
            6,
            "NVIDIA Jetson Orin Nano Series Data Sheet: six-core Arm "
            "Cortex-A78AE (one 4-core and one 2-core cluster)",
        ),
    ),
    DeviceProfile(
        name="raspberry-pi-4",
        description=(
            "Raspberry Pi 4 Model B (4 GB): 4x Cortex-A72 at 1.5 GHz, "
            "on-board Wi-Fi"
        ),
        idle_power_w=Figure(
            2.7,
            "pidramble.com (Jeff Geerling) Raspberry Pi power consumption "
            "benchmarks: Pi 4 Model B idle 540 mA at 5 V = 2.7 W",
        ),
        active_power_w=Figure(
            6.4,
            "pidramble.com (Jeff Geerling) Raspberry Pi power consumption "
            "benchmarks: Pi 4 Model B, 400% CPU load (stress --cpu 4) "
            "1280 mA at 5 V = 6.4 W",
        ),
        radio_tx_j_per_byte=_wifi_tx(_NO_WIFI_FIGURE),
        radio_rx_j_per_byte=_wifi_rx(_NO_WIFI_FIGURE),
        memory_mb=Figure(
            4096,
            "Raspberry Pi 4 Model B product brief: 1, 2, 4 or 8 GB LPDDR4 "
            "variants; the 4 GB variant is modelled",
        ),
        cpu_cores=Figure(
            4,
            "Raspberry Pi 4 Model B product brief: Broadcom BCM2711, "
            "quad-core Cortex-A72 (ARM v8) 64-bit SoC @ 1.5 GHz",
        ),
    ),
    DeviceProfile(
        name="smartphone",
        description=(
            "Quad-core Android smartphone of the Samsung Galaxy S III class "
            "(Exynos 4412, 1 GB RAM), screen off"
        ),
        idle_power_w=Figure(
            0.27,
            "A. Carroll, G. Heiser, \"An Analysis of Power Consumption in a "
            'Smartphone", USENIX ATC 2010: whole-device idle power (awake, '
            "screen off) of about 268.8 mW measured on the Openmoko Neo "
            "Freerunner; an older phone than the one modelled, so an "
            "estimate for it",
        ),
        active_power_w=Figure(
            3.5,
            "estimate, not a measurement: a few watts for a quad-core phone "
            "SoC with all cores busy, screen off; Carroll & Heiser, \"The "
            "Systems Hacker's Guide to the Galaxy: Energy Usage in a Modern "
            'Smartphone", APSys 2013, measured the Galaxy S III per '
            "component, but their figure was not confirmed for this catalog",
        ),
        radio_tx_j_per_byte=_wifi_tx(""),
        radio_rx_j_per_byte=_wifi_rx(""),
        memory_mb=Figure(
            1024,
            "Samsung Galaxy S III (GT-I9300) specification: 1 GB RAM",
        ),
        cpu_cores=Figure(
            4,
            "Samsung Galaxy S III (GT-I9300) specification: Exynos 4412 "
            "quad-core Cortex-A9",
        ),
    ),
    DeviceProfile(
        name="laptop",
        description=(
            "Ultraportable laptop measured at the wall (Dell Inspiron 300m: "
            "Pentium M 1.2 GHz, 640 MB RAM), battery removed"
        ),
        idle_power_w=Figure(
            15.0,
            'J. Atwood, "How Much Power Does My Laptop Really Use?", Coding '
            "Horror, April 2006: Dell Inspiron 300m idle at the Windows "
            "desktop 15 W (Kill-A-Watt at the wall, +/- 1 W)",
        ),
        active_power_w=Figure(
            26.0,
            'J. Atwood, "How Much Power Does My Laptop Really Use?", Coding '
            "Horror, April 2006: Dell Inspiron 300m running the Prime95 "
            "torture test 26 W (Kill-A-Watt at the wall, +/- 1 W)",
        ),
        radio_tx_j_per_byte=_wifi_tx(_NO_WIFI_FIGURE),
        radio_rx_j_per_byte=_wifi_rx(_NO_WIFI_FIGURE),
        memory_mb=Figure(
            640,
            'J. Atwood, "How Much Power Does My Laptop Really Use?", Coding '
            "Horror, April 2006: the measured Inspiron 300m had 640 MB RAM",
        ),
        cpu_cores=Figure(
            1,
            'J. Atwood, "How Much Power Does My Laptop Really Use?", Coding '
            "Horror, April 2006: Intel Pentium M 1.2 GHz low voltage, a "
            "single-core processor",
        ),
    ),
)

CATALOG: dict[str, DeviceProfile] = {p.name: p for p in _PROFILES}


def get_profile(name: str) -> DeviceProfile:
    """Return the catalog profile called ``name``.

    Raises :class:`UnknownProfileError` (a :class:`KeyError`) naming the
    known profiles when ``name`` is not in :data:`CATALOG`.
    """
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownProfileError(name, sorted(CATALOG)) from None
