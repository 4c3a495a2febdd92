"""The metrics of one run: per step, per device and in total, as written to `--metrics-out`."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


@dataclass
class RunMetrics:
    plan: str
    scenario: str
    devices: list[str]
    batch_size: int
    start_step: int = 0
    wall_s: float = 0.0
    meters: dict[str, str] = field(default_factory=dict)
    cpu_sources: dict[str, str] = field(default_factory=dict)
    corpora: dict[str, str] = field(default_factory=dict)
    startup_s: dict[str, float] = field(default_factory=dict)
    steps: list[dict] = field(default_factory=list)
    lost_steps: list[dict] = field(default_factory=list)
    """Steps trained but lost to a failure before a checkpoint kept them (re-done after recovery)."""
    plans: list[dict] = field(default_factory=list)
    """Every plan that ran, with the step it started from (more than one after a recovery)."""
    recoveries: list[dict] = field(default_factory=list)
    measurements: dict[str, dict] = field(default_factory=dict)
    """Calibration jobs: per device, what it measured (compute, links)."""
    """Profiling jobs: per device, per part (compute, links), what the device measured."""
    checkpoints: list[dict] = field(default_factory=list)
    first_step_at: Optional[float] = None
    """time.monotonic() when the first step of this run completed (for recovery timings)."""
    extra: dict = field(default_factory=dict)
    """Backend facts (emulation settings, recoveries) merged into the JSON's top level."""
    _pending: dict[int, dict[str, dict]] = field(default_factory=dict)

    def add_ready(self, device: str, event: dict) -> None:
        self.meters[device] = event["meter"]
        self.cpu_sources[device] = event["cpu_source"]
        self.corpora[device] = event["corpus"]
        self.startup_s[device] = event["startup_s"]
        if self.plans:  # where each device's start of this plan went (a shard's own account; extra field)
            parts = event.get("startup_parts")
            self.plans[-1].setdefault("startup_s", {})[device] = {
                "total": event["startup_s"],
                **({k: v for k, v in parts.items() if isinstance(v, (int, float))} if isinstance(parts, dict) else {})}

    def add_step(self, device: str, event: dict, world: int) -> Optional[dict]:
        """Collect one device's report; returns the step's record once every device has reported."""
        pending = self._pending.setdefault(event["step"], {})
        pending[device] = event
        if len(pending) < world:
            return None
        del self._pending[event["step"]]
        per_device = {
            name: {"time_s": e["time_s"], "interval_s": e["interval_s"], "cpu_s": e["cpu_s"], "energy_j": e["energy_j"],
                   "bytes_sent": e["bytes_sent"], "bytes_recv": e["bytes_recv"]}
            for name, e in pending.items()
        }
        record = {
            "step": event["step"],
            "loss": sum(e["loss"] * e["loss_weight"] for e in pending.values() if e["loss"] is not None),
            # The step is over when its slowest device is.
            "time_s": max(e["time_s"] for e in pending.values()),
            "energy_j": sum(e["energy_j"] for e in pending.values()),
            "bytes": sum(e["bytes_sent"] for e in pending.values()),
            "devices": per_device,
        }
        while self.steps and self.steps[-1]["step"] >= record["step"]:
            self.lost_steps.append(self.steps.pop())
        self.steps.append(record)
        if self.first_step_at is None:
            self.first_step_at = time.monotonic()
        return record

    @property
    def last_step(self) -> int:
        return self.steps[-1]["step"] if self.steps else self.start_step

    @property
    def losses(self) -> list[float]:
        return [s["loss"] for s in self.steps]

    def begin_plan(self, plan: str, devices: list[str], start_step: int) -> None:
        """A new plan takes over (the first one, or the one a recovery chose)."""
        self.plans.append({"plan": plan, "from_step": start_step})
        self.plan = self.plan or plan
        self.devices += [d for d in devices if d not in self.devices]
        self.first_step_at = None

    def to_dict(self) -> dict:
        devices = {}
        every_step = self.lost_steps + self.steps  # lost work was paid for too
        for name in self.devices:
            rows = [s["devices"][name] for s in every_step if name in s["devices"]]
            devices[name] = {
                "energy_j": sum(r["energy_j"] for r in rows),
                "cpu_s": sum(r["cpu_s"] for r in rows),
                "time_s": sum(r["time_s"] for r in rows),
                "bytes_sent": sum(r["bytes_sent"] for r in rows),
                "bytes_recv": sum(r["bytes_recv"] for r in rows),
                "meter": self.meters.get(name, "none"),
                "cpu_source": self.cpu_sources.get(name, "none"),
                "startup_s": self.startup_s.get(name),
            }
        time_s = sum(s["time_s"] for s in every_step)
        energy_j = sum(s["energy_j"] for s in every_step)
        samples = len(self.steps) * self.batch_size
        return {
            "plan": self.plan,
            "scenario": self.scenario,
            "start_step": self.start_step,
            "plans": self.plans,
            "steps": self.steps,
            "lost_steps": self.lost_steps,
            "recoveries": self.recoveries,
            "devices": devices,
            "checkpoints": self.checkpoints,
            "total": {
                "time_s": time_s,
                "energy_j": energy_j,
                "samples": samples,
                "energy_per_sample_j": energy_j / samples if samples else None,
                "time_per_sample_s": time_s / samples if samples else None,
                "wall_s": self.wall_s,
            },
            **self.extra,
        }

    def write(self, path: str) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_dict(), indent=2))
