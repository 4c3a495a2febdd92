"""The immutable records EdgeTrain-v0 is made of: what the world looks like at a decision, what one
interval brought, the running totals of the job, and the episode state that `step` replaces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from edgetrain.core.plans import Plan
from edgetrain.envs.costmodel import Prediction


@dataclass(frozen=True)
class ResolvedPlan:
    """A plan the env will run, with what the hot path needs precomputed."""

    plan: Plan
    slots: tuple[int, ...]
    """The slots of its devices, in plan order."""
    prediction: Prediction
    step_energies_j: tuple[float, ...]
    """Predicted energy per step of each member, in plan order."""
    idle_w: float
    """The members' idle power together: what they draw while they wait (switch, failure)."""


@dataclass(frozen=True)
class World:
    """What the agent can see of the fleet at a decision."""

    t: float
    """Scenario seconds since the job started."""
    available: int
    """Bit i: the device in slot i is available."""
    up_for_s: tuple[float, ...]
    """Per slot: how long an available device has been up (0 for others)."""
    battery: tuple[float, ...]
    """Per slot: charge as a fraction (1.0 on mains power)."""


@dataclass(frozen=True)
class IntervalOutcome:
    """What one decision interval brought, simulated or measured."""

    plan: str
    """The plan that ran last (a recovery may have replaced the chosen one)."""
    failures: int
    """Devices lost during the interval (each one a recovery)."""
    switched: bool
    time_s: float
    """Wall time of the interval: switch, training, failure detection and recovery, and any wait
    until a device was available again."""
    energy_j: float
    samples: int
    """Samples kept (checkpointed work)."""
    lost_steps: int
    world: World
    """The fleet at the next decision."""
    measured: Optional[dict] = None
    """Live only: the runtime's metrics of the interval."""

    @property
    def failed(self) -> bool:
        return self.failures > 0


@dataclass(frozen=True)
class JobTotals:
    """Running totals of one episode (one training job): the only place they are summed. Every step's
    info carries them as `info["job"]`; at the last step they are the job's."""

    energy_j: float = 0.0
    time_s: float = 0.0
    samples: int = 0
    zeus_cost: float = 0.0
    failures: int = 0
    lost_steps: int = 0
    plan_switches: int = 0
    decisions: int = 0

    def add(self, outcome: IntervalOutcome, zeus_cost: float) -> "JobTotals":
        return JobTotals(self.energy_j + outcome.energy_j, self.time_s + outcome.time_s,
                         self.samples + outcome.samples, self.zeus_cost + zeus_cost,
                         self.failures + outcome.failures, self.lost_steps + outcome.lost_steps,
                         self.plan_switches + int(outcome.switched), self.decisions + 1)

    def per_sample(self) -> dict:
        """Zeus cost, energy and time per sample trained (None before any sample)."""
        samples = self.samples or None
        return {"zeus_cost": samples and self.zeus_cost / samples,
                "energy_per_sample_j": samples and self.energy_j / samples,
                "time_per_sample_s": samples and self.time_s / samples}


@dataclass(frozen=True)
class EpisodeState:
    """Everything that changes during an episode. `step` replaces it; nothing mutates it."""

    world: World
    samples: int = 0
    plan: Optional[ResolvedPlan] = None
    """The plan running now (None before the first decision and after a failure)."""
    failed: bool = False
    """The last interval lost a device."""
    totals: JobTotals = field(default_factory=JobTotals)
