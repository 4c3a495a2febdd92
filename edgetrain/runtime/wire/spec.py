"""What a shard process is told to do, and what it reports back: plain JSON, both ways.

The same messages go through a pipe (local backend) or the authenticated control plane (a worker
daemon on a device), so they are checked against a schema when read, never unpickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Optional

from edgetrain.core.config import ModelConfig
from edgetrain.core.errors import PlanError
from edgetrain.core.plans import ALL_KINDS, HYBRID, Plan

# A shard writes one line per event on stdout, behind this prefix; anything else on stdout is noise.
EVENT_PREFIX = "@edgetrain "


@dataclass(frozen=True)
class ShardSpec:
    rank: int
    world_size: int
    kind: str
    device: str
    """Scenario device name this shard runs for."""
    master_addr: str
    master_port: int
    model: dict
    """ModelConfig fields."""
    seed: int
    steps: int
    """Training steps to run in this job (after the resumed checkpoint's steps, if any)."""
    profile: str
    """Device profile name, for the profile energy meter."""
    cores: float
    """CPU capacity of the device in cores (the profile meter's full load)."""
    data: Optional[str] = None
    """Training text (None: the built-in corpus). Like `resume` and `checkpoint_out`: a path for a local
    launcher; through a worker, the plain name of a file in the worker's own folder (wire/transfer.py)."""
    resume: Optional[str] = None
    """Plan-independent checkpoint to start from."""
    checkpoint_out: Optional[str] = None
    checkpoint_every: int = 0
    """Save every this many steps (0: only after the last step)."""
    hardware_meter: bool = False
    socket_ifname: Optional[str] = None
    """Network interface for gloo (needed inside Mininet hosts)."""
    timeout_s: float = 300.0
    """torch.distributed timeout; liveness is watched by the coordinator, not by this."""
    mode: str = "train"
    """train: run the plan; calibrate: measure this device's compute and its links (device/measurements.py)."""
    standby: bool = False
    """Keep a second warm process ready on this device while the shard trains (imported at the lowest
    CPU priority), so that a recovery or a switch does not wait for torch to import (recovering jobs ask)."""
    hold: bool = False
    """After the last step, keep the process group, model and optimizer and wait for more steps (a plan
    the coordinator may keep at its next decision); the worker's extend/release orders go on or end it."""
    layout: Optional[str] = None
    """Hybrid plans: the whole plan (stages, their blocks, micro-batches), as `edgetrain run --plan` takes it."""
    power_mode: Optional[str] = None
    """The device's power mode for this plan (the scenario's name for it; None: its top mode). The worker
    sets it before the shard's first step (device/power_modes.py) and the profile meter prices it."""
    power_speed: float = 1.0
    """The mode's compute speed, a fraction of the top mode's (1 in the top mode)."""
    power_scale: float = 1.0
    """The mode's compute power above idle, a fraction of the top mode's (1 in the top mode)."""

    def __post_init__(self):
        # Every field checked for type and bound before anything acts on the spec: it comes from the
        # network (a worker) and a bad one must be refused whole, not half-used (a shard process taken,
        # a thread crashed on a fractional rank).
        for name, (types, low, high) in _FIELD_RULES.items():
            value = getattr(self, name)
            if value is None and type(None) in types:
                continue
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise ValueError(f"shard spec field {name!r} must be {_TYPE_NAMES[types]}")
            size = len(value) if isinstance(value, str) else value
            if isinstance(value, (int, float, str)) and not isinstance(value, bool) and not low <= size <= high:
                what = "its length" if isinstance(value, str) else "it"
                raise ValueError(f"shard spec field {name!r}: {what} must be within [{low}, {high}]")
        if self.rank >= self.world_size:
            raise ValueError(f"shard spec: rank {self.rank} is not below world_size {self.world_size}")
        if self.kind not in ALL_KINDS:
            raise ValueError(f"shard spec: unknown plan kind {self.kind[:20]!r}")
        if (self.kind == HYBRID) != (self.layout is not None):
            raise ValueError("shard spec: a hybrid plan, and only one, comes with its layout")
        if self.layout is not None:
            try:
                plan = Plan.parse(self.layout)
            except PlanError as exc:
                raise ValueError(f"shard spec: layout: {exc}") from None
            if plan.kind != HYBRID or plan.degree != self.world_size:
                raise ValueError(f"shard spec: the layout is not a hybrid plan of {self.world_size} devices")
        if self.power_mode is None and (self.power_speed, self.power_scale) != (1.0, 1.0):
            raise ValueError("shard spec: a speed or power below the top mode's comes with the power mode's name")
        if self.power_mode is not None and not (self.power_speed < 1.0 and self.power_scale < 1.0):
            raise ValueError("shard spec: a power mode comes with its speed and power, both below 1")
        if self.mode not in ("train", "calibrate"):
            raise ValueError(f"shard spec: unknown mode {self.mode[:20]!r}")
        model_fields = {f.name for f in fields(ModelConfig) if f.init}
        if set(self.model) - model_fields:
            raise ValueError(f"shard spec: unknown model keys {', '.join(sorted(set(self.model) - model_fields))[:80]}")
        for key, value in self.model.items():
            bound = MODEL_BOUNDS.get(key)
            if value is not None and bound is not None and (
                    not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= bound):
                raise ValueError(f"shard spec: model {key} must be a number in (0, {bound}]")
        try:
            ModelConfig(**self.model)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"shard spec: model: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ShardSpec":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise ValueError("a shard spec must be JSON") from None
        if not isinstance(data, dict):
            raise ValueError("a shard spec must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown shard spec keys: {', '.join(sorted(unknown))[:80]}")
        missing = {f.name for f in fields(cls) if f.default is MISSING} - set(data)
        if missing:
            raise ValueError(f"shard spec keys missing: {', '.join(sorted(missing))}")
        return cls(**data)


_INT, _NUMBER, _TEXT, _OPTIONAL_TEXT = (int,), (int, float), (str,), (str, type(None))
_PATH_MAX = 4096
# field -> (JSON types, lowest, highest): numbers by value, text by length.
_FIELD_RULES: dict[str, tuple[tuple, float, float]] = {
    "rank": (_INT, 0, 1023), "world_size": (_INT, 1, 1024), "kind": (_TEXT, 1, 16), "device": (_TEXT, 1, 128),
    "master_addr": (_TEXT, 1, 255), "master_port": (_INT, 1, 65535), "model": ((dict,), 0, 0),
    "seed": (_INT, 0, 2 ** 63 - 1), "steps": (_INT, 0, 10 ** 9), "profile": (_TEXT, 1, 64),
    "cores": (_NUMBER, 1e-3, 1024), "data": (_OPTIONAL_TEXT, 1, _PATH_MAX), "resume": (_OPTIONAL_TEXT, 1, _PATH_MAX),
    "checkpoint_out": (_OPTIONAL_TEXT, 1, _PATH_MAX), "checkpoint_every": (_INT, 0, 10 ** 9),
    "hardware_meter": ((bool,), 0, 1), "socket_ifname": (_OPTIONAL_TEXT, 1, 15), "timeout_s": (_NUMBER, 1e-3, 86400),
    "mode": (_TEXT, 1, 16), "hold": ((bool,), 0, 1),
    "standby": ((bool,), 0, 1), "layout": (_OPTIONAL_TEXT, 1, _PATH_MAX),
    "power_mode": (_OPTIONAL_TEXT, 1, 32), "power_speed": (_NUMBER, 1e-9, 1.0), "power_scale": (_NUMBER, 1e-9, 1.0),
}
_TYPE_NAMES = {_INT: "an integer", _NUMBER: "a number", _TEXT: "text", _OPTIONAL_TEXT: "text or null",
               (dict,): "an object", (bool,): "true or false"}
MODEL_BOUNDS = {"layers": 1024, "d_model": 65536, "heads": 1024, "seq_len": 1 << 20, "batch_size": 1 << 20,
                "d_ff": 1 << 18, "lr": 10.0, "microbatches": 1 << 20}
"""Upper bounds of a model a worker accepts from the wire: far above any edge model, low enough that
a hostile spec cannot ask for an allocation of absurd size by one field alone."""


# Event kinds and the fields each must carry, with their JSON types.
EVENT_SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "ready": {"rank": (int,), "start_step": (int,), "corpus": (str,), "meter": (str,), "cpu_source": (str,),
              "startup_s": (int, float)},
    "step": {"rank": (int,), "step": (int,), "loss": (int, float, type(None)), "loss_weight": (int, float),
             "time_s": (int, float), "cpu_s": (int, float), "bytes_sent": (int,), "bytes_recv": (int,),
             "energy_j": (int, float), "interval_s": (int, float)},
    "checkpoint": {"rank": (int,), "step": (int,), "path": (str,), "time_s": (int, float)},
    "measurement": {"rank": (int,), "part": (str,), "data": (dict,)},
    "held": {"rank": (int,), "step": (int,)},
    "done": {"rank": (int,)},
    "idle": {"rank": (int,)},
    "warm": {"rank": (int,)},
    "error": {"rank": (int,), "message": (str,)},
}


def encode_event(kind: str, **payload) -> str:
    return EVENT_PREFIX + json.dumps({"event": kind, **payload})


def decode_event(line: str) -> Optional[dict]:
    """The event on this line, or None for any line that is not a well-formed event."""
    if not line.startswith(EVENT_PREFIX):
        return None
    try:
        event = json.loads(line[len(EVENT_PREFIX):])
    except json.JSONDecodeError:
        return None
    if not isinstance(event, dict):
        return None
    schema = EVENT_SCHEMA.get(event.get("event"))
    if schema is None:
        return None
    for key, types in schema.items():
        value = event.get(key)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return None
    return event


def shard_environment(socket_ifname: Optional[str] = None) -> dict[str, str]:
    """The environment a shard process starts with, whoever starts it (a local launcher or a worker):
    the spec comes on its stdin, events go to its stdout, one line each."""
    env = dict(os.environ)
    # One thread per shard: each process stands for one device's CPU.
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if socket_ifname:
        env["GLOO_SOCKET_IFNAME"] = socket_ifname
    return env
