"""Training plans: `KIND:DEV,DEV,...` (DESIGN.md). The device order is the pipeline / ring order.

Hybrid plans (Asteroid, MobiCom'24) are pipelines whose stages are each data-parallel over a group of
devices, with blocks allotted per stage:

    hybrid:orin-nano+xavier-nx=3/pi4=1@4

reads "stage 1: orin-nano and xavier-nx, data parallel, 3 blocks; stage 2: pi4, 1 block; 4
micro-batches". `=N` may be left out on every stage (blocks balanced by count) and `@M` too (the
default micro-batch count). A stage of one device is an uneven pipeline stage.

Any device of any plan may carry one of its scenario's power modes: `dp:orin-nano~7W,pi4` runs the
Orin Nano in its 7W mode (DeviceConfig.power_modes); without `~` a device runs in its top mode.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import combinations

from edgetrain.core.config import TOP_POWER_MODE
from edgetrain.core.errors import PlanError

PLAN_KINDS = ("local", "dp", "pp", "tp", "sp")
"""The uniform kinds: one parallelism over every device of the plan (the env's action space)."""
HYBRID = "hybrid"
ALL_KINDS = PLAN_KINDS + (HYBRID,)
# When a kind cannot run on the devices chosen (or left after a loss), the other kinds are tried in
# this order: the env resolving an action and the runtime replanning after a lost device agree.
FALLBACK_KINDS = ("dp", "pp", "sp", "tp")
KIND_NAMES = {
    "local": "one device",
    "dp": "data parallel",
    "pp": "pipeline parallel",
    "tp": "tensor parallel",
    "sp": "sequence parallel",
    HYBRID: "pipeline of data-parallel stages",
}


@dataclass(frozen=True)
class Plan:
    kind: str
    devices: tuple[str, ...]
    """Every device, in rank order (hybrid: stage by stage)."""
    group_sizes: tuple[int, ...] = ()
    """Hybrid: how many of `devices` each pipeline stage takes, in order."""
    stage_layers: tuple[int, ...] = ()
    """Hybrid: blocks per stage; empty: balanced by count."""
    microbatches: int = 0
    """Hybrid: micro-batches per step; 0: the default for the stage count (core/sizing.py)."""
    modes: tuple[str, ...] = ()
    """Each device's power mode, in `devices` order ("" for the top mode); empty: every one in its top."""

    def __post_init__(self):
        if self.modes and not any(self.modes):
            object.__setattr__(self, "modes", ())  # all top modes: one spelling, so plans compare equal
        if self.modes and len(self.modes) != len(self.devices):
            raise PlanError(f"a plan gives power modes for {len(self.modes)} of its {len(self.devices)} devices")
        if self.kind not in ALL_KINDS:
            raise PlanError(f"unknown plan kind {self.kind!r} (known: {', '.join(ALL_KINDS)})")
        if not self.devices:
            raise PlanError(f"plan {self.kind!r} names no device")
        repeated = sorted({d for d in self.devices if self.devices.count(d) > 1})
        if repeated:
            raise PlanError(f"plan names a device twice: {', '.join(repeated)}")
        if self.kind == "local" and len(self.devices) != 1:
            raise PlanError(f"a local plan runs on exactly one device, got {len(self.devices)}")
        if self.kind != "local" and len(self.devices) < 2:
            raise PlanError(f"a {self.kind} plan needs at least two devices; use local:{self.devices[0]} for one")
        if self.kind == HYBRID:
            self._check_hybrid()
        elif self.group_sizes or self.stage_layers or self.microbatches:
            raise PlanError(f"only hybrid plans have stages; {self.kind}:{','.join(self.devices)} has none")

    def _check_hybrid(self) -> None:
        if len(self.group_sizes) < 2:
            raise PlanError(f"a hybrid plan needs at least two stages; for one, use "
                            f"dp:{','.join(self.devices)}")
        if min(self.group_sizes) < 1 or sum(self.group_sizes) != len(self.devices):
            raise PlanError("the stages of a hybrid plan must each name at least one device, and only its devices")
        if self.stage_layers and len(self.stage_layers) != len(self.group_sizes):
            raise PlanError(f"a hybrid plan gives blocks for {len(self.stage_layers)} of its "
                            f"{len(self.group_sizes)} stages: give =N on every stage or on none")
        if self.stage_layers and min(self.stage_layers) < 1:
            raise PlanError("every stage of a hybrid plan needs at least one block (=1 or more)")
        if self.microbatches < 0:
            raise PlanError("a hybrid plan's micro-batch count must be positive")

    @classmethod
    def parse(cls, text: str) -> "Plan":
        kind, sep, devices = text.strip().partition(":")
        if not sep or not devices:
            raise PlanError(f"plan {text!r} is not of the form KIND:DEV,DEV,... (for example dp:laptop,pi4)")
        if kind.strip() == HYBRID:
            plan = cls._parse_hybrid(text.strip(), devices.strip())
        else:
            plan = cls(kind.strip(), tuple(d.strip() for d in devices.split(",") if d.strip()))
        named = [_device_and_mode(text, d) for d in plan.devices]
        return dataclasses.replace(plan, devices=tuple(d for d, _ in named), modes=tuple(m for _, m in named))

    @classmethod
    def _parse_hybrid(cls, text: str, body: str) -> "Plan":
        shape = "hybrid:DEV+DEV=BLOCKS/DEV=BLOCKS@MICROBATCHES (for example hybrid:orin-nano+xavier-nx=3/pi4=1@4)"
        body, at, micro = body.partition("@")
        if at and not micro.strip().isdigit():
            raise PlanError(f"plan {text!r}: the micro-batch count after @ must be a whole number ({shape})")
        devices, sizes, layers = [], [], []
        for stage in body.split("/"):
            names, eq, blocks = stage.partition("=")
            if eq and not blocks.strip().isdigit():
                raise PlanError(f"plan {text!r}: the blocks after = must be a whole number ({shape})")
            group = [d.strip() for d in names.split("+") if d.strip()]
            if not group:
                raise PlanError(f"plan {text!r} has a stage without devices ({shape})")
            devices += group
            sizes.append(len(group))
            if eq:
                layers.append(int(blocks))
        if layers and len(layers) != len(sizes):
            raise PlanError(f"plan {text!r} gives blocks for {len(layers)} of its {len(sizes)} stages: "
                            f"give =N on every stage or on none")
        if at and int(micro) < 1:
            raise PlanError(f"plan {text!r}: a pipeline needs at least one micro-batch (@1 or more)")
        return cls(HYBRID, tuple(devices), tuple(sizes), tuple(layers), int(micro) if at else 0)

    def without(self, lost: set[str]) -> "Plan | None":
        """Hybrid: the same pipeline on the devices not lost. A stage whose devices are all lost gives
        its blocks to the stage before it (the first stage's to the next); None when fewer than two
        stages would be left."""
        groups = [tuple(d for d in group if d not in lost) for group in self.stages]
        blocks = list(self.stage_layers) or [0] * len(groups)
        for s in range(len(groups)):
            if not groups[s]:
                heir = next((i for i in range(s - 1, -1, -1) if groups[i]), None)
                heir = heir if heir is not None else next((i for i in range(s + 1, len(groups)) if groups[i]), None)
                if heir is None:
                    return None
                blocks[heir] += blocks[s]
        kept = [s for s in range(len(groups)) if groups[s]]
        if len(kept) < 2:
            return None
        return Plan(HYBRID, tuple(d for s in kept for d in groups[s]), tuple(len(groups[s]) for s in kept),
                    tuple(blocks[s] for s in kept) if self.stage_layers else (), self.microbatches,
                    tuple(self.mode(d) for s in kept for d in groups[s]) if self.modes else ())

    def mode(self, device: str) -> str:
        """The power mode `device` runs in under this plan; "" for its top mode."""
        return self.modes[self.devices.index(device)] if self.modes else ""

    def in_modes(self, modes: dict[str, str]) -> "Plan":
        """This plan with some devices' power modes set ("" for the top mode); others keep theirs."""
        return dataclasses.replace(self, modes=tuple(modes.get(d, self.mode(d)) for d in self.devices))

    @property
    def top_modes(self) -> "Plan":
        """This plan with every device in its top power mode."""
        return dataclasses.replace(self, modes=())

    @property
    def stages(self) -> tuple[tuple[str, ...], ...]:
        """Hybrid: the device group of each pipeline stage."""
        groups, start = [], 0
        for size in self.group_sizes:
            groups.append(self.devices[start:start + size])
            start += size
        return tuple(groups)

    @property
    def degree(self) -> int:
        return len(self.devices)

    def __str__(self) -> str:
        named = [f"{d}~{self.mode(d)}" if self.mode(d) else d for d in self.devices]
        if self.kind != HYBRID:
            return f"{self.kind}:{','.join(named)}"
        groups, start = [], 0
        for size in self.group_sizes:
            groups.append(named[start:start + size])
            start += size
        stages = ["+".join(group) + (f"={self.stage_layers[i]}" if self.stage_layers else "")
                  for i, group in enumerate(groups)]
        return f"{HYBRID}:{'/'.join(stages)}" + (f"@{self.microbatches}" if self.microbatches else "")

    def check_devices(self, known: list[str]) -> None:
        unknown = [d for d in self.devices if d not in known]
        if unknown:
            raise PlanError(f"plan {self} names unknown device {unknown[0]!r} (scenario devices: {', '.join(known)})")


def _device_and_mode(text: str, token: str) -> tuple[str, str]:
    device, tilde, mode = token.partition("~")
    if tilde and not mode.strip():
        raise PlanError(f"plan {text!r}: a power mode must follow ~ (for example orin-nano~7W)")
    mode = mode.strip()
    return device.strip(), "" if mode == TOP_POWER_MODE else mode


def enumerate_plans(devices: list[str], max_devices: int) -> list[Plan]:
    """Every plan kind on every subset of up to max_devices devices, each subset in scenario order."""
    plans = []
    for size in range(1, min(max_devices, len(devices)) + 1):
        for group in combinations(devices, size):
            kinds = ("local",) if size == 1 else ("dp", "pp", "tp", "sp")
            plans.extend(Plan(kind, group) for kind in kinds)
    return plans
