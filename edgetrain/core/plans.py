"""Training plans: `KIND:DEV,DEV,...` (DESIGN.md). The device order is the pipeline / ring order."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from edgetrain.core.errors import PlanError

PLAN_KINDS = ("local", "dp", "pp", "tp", "sp")
# When a kind cannot run on the devices chosen (or left after a loss), the other kinds are tried in
# this order: the env resolving an action and the runtime replanning after a lost device agree.
FALLBACK_KINDS = ("dp", "pp", "sp", "tp")
KIND_NAMES = {
    "local": "one device",
    "dp": "data parallel",
    "pp": "pipeline parallel",
    "tp": "tensor parallel",
    "sp": "sequence parallel",
}


@dataclass(frozen=True)
class Plan:
    kind: str
    devices: tuple[str, ...]

    def __post_init__(self):
        if self.kind not in PLAN_KINDS:
            raise PlanError(f"unknown plan kind {self.kind!r} (known: {', '.join(PLAN_KINDS)})")
        if not self.devices:
            raise PlanError(f"plan {self.kind!r} names no device")
        repeated = sorted({d for d in self.devices if self.devices.count(d) > 1})
        if repeated:
            raise PlanError(f"plan names a device twice: {', '.join(repeated)}")
        if self.kind == "local" and len(self.devices) != 1:
            raise PlanError(f"a local plan runs on exactly one device, got {len(self.devices)}")
        if self.kind != "local" and len(self.devices) < 2:
            raise PlanError(f"a {self.kind} plan needs at least two devices; use local:{self.devices[0]} for one")

    @classmethod
    def parse(cls, text: str) -> "Plan":
        kind, sep, devices = text.strip().partition(":")
        if not sep or not devices:
            raise PlanError(f"plan {text!r} is not of the form KIND:DEV,DEV,... (for example dp:laptop,pi4)")
        return cls(kind.strip(), tuple(d.strip() for d in devices.split(",") if d.strip()))

    @property
    def degree(self) -> int:
        return len(self.devices)

    def __str__(self) -> str:
        return f"{self.kind}:{','.join(self.devices)}"

    def check_devices(self, known: list[str]) -> None:
        unknown = [d for d in self.devices if d not in known]
        if unknown:
            raise PlanError(f"plan {self} names unknown device {unknown[0]!r} (scenario devices: {', '.join(known)})")


def enumerate_plans(devices: list[str], max_devices: int) -> list[Plan]:
    """Every plan kind on every subset of up to max_devices devices, each subset in scenario order."""
    plans = []
    for size in range(1, min(max_devices, len(devices)) + 1):
        for group in combinations(devices, size):
            kinds = ("local",) if size == 1 else ("dp", "pp", "tp", "sp")
            plans.extend(Plan(kind, group) for kind in kinds)
    return plans
