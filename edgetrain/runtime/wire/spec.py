"""What a shard process is told to do, and what it reports back: plain JSON, both ways.

The same messages go through a pipe (local backend) or the authenticated control plane (a worker
daemon on a device), so they are checked against a schema when read, never unpickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Optional

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

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ShardSpec":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a shard spec must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown shard spec keys: {', '.join(sorted(unknown))}")
        return cls(**data)


# Event kinds and the fields each must carry, with their JSON types.
EVENT_SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "ready": {"rank": (int,), "start_step": (int,), "corpus": (str,), "meter": (str,), "cpu_source": (str,),
              "startup_s": (int, float)},
    "step": {"rank": (int,), "step": (int,), "loss": (int, float, type(None)), "loss_weight": (int, float),
             "time_s": (int, float), "cpu_s": (int, float), "bytes_sent": (int,), "bytes_recv": (int,),
             "energy_j": (int, float), "interval_s": (int, float)},
    "checkpoint": {"rank": (int,), "step": (int,), "path": (str,), "time_s": (int, float)},
    "measurement": {"rank": (int,), "part": (str,), "data": (dict,)},
    "done": {"rank": (int,)},
    "idle": {"rank": (int,)},
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
