"""Launchers start shard processes and turn what they print into events on one queue.

`LocalLauncher` starts them as subprocesses of this machine (the local backend). The mininet and
cluster backends start the very same `python -m edgetrain.runtime.device.shard` through a worker daemon instead.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgetrain.runtime.wire.spec import ShardSpec, decode_event, shard_environment


@dataclass(frozen=True)
class ShardMessage:
    """An event a shard reported, or its exit (event None, exit_code set)."""

    rank: int
    event: Optional[dict] = None
    exit_code: Optional[int] = None
    out_of_memory: bool = False
    """The device's kernel killed the shard for memory (device/oom.py)."""


class ShardHandle(ABC):
    @abstractmethod
    def kill(self) -> None:
        """Stop the shard now; a no-op when it has exited."""

    def extend(self, steps: int) -> None:
        """A held shard (spec `hold`) trains `steps` more steps in the same process group."""
        raise NotImplementedError("this launcher does not keep plans")

    def release(self) -> None:
        """A held shard ends its plan as a finished one does (its process stays warm where it can)."""
        self.kill()


class Launcher(ABC):
    supports_hold = False
    """Whether its shards can be held between jobs (ShardHandle.extend)."""
    supports_power_modes = False
    """Whether its devices' workers set a plan's power modes (the local backend has no worker)."""

    @abstractmethod
    def master_address(self, spec_device: str) -> str:
        """The address other shards reach rank 0 at, when rank 0 runs on this device."""

    @abstractmethod
    def start(self, spec: ShardSpec, messages: "queue.Queue[ShardMessage]", log_path: Path) -> ShardHandle:
        """Start one shard; its events and its exit go to `messages`."""

    def lost_devices(self, devices: list[str]) -> list[str]:
        """Devices among these that stopped answering (only launchers with heartbeats can tell)."""
        return []

    def silent_but_connected(self, devices: list[str]) -> list[str]:
        """Devices among these that stopped answering but whose connection is still open (they may yet
        report); only launchers with heartbeats can tell."""
        return []

    def memory_nearly_full(self, devices: list[str]) -> list[str]:
        """Devices among these whose last report said their memory cap was nearly reached (a silence
        there may be a memory stall before an OOM kill); only launchers with heartbeats can tell."""
        return []

    def available_devices(self, devices: list[str]) -> list[str]:
        """Devices among these that could take part in a plan now."""
        return [d for d in devices if d not in self.lost_devices(devices)]


def pump_events(rank: int, stream, process: subprocess.Popen, messages: "queue.Queue[ShardMessage]") -> None:
    """Forward every well-formed event line, then the exit code."""
    for line in stream:
        event = decode_event(line.rstrip("\n"))
        if event is not None:
            messages.put(ShardMessage(rank, event=event))
    messages.put(ShardMessage(rank, exit_code=process.wait()))


class LocalShard(ShardHandle):
    def __init__(self, process: subprocess.Popen):
        self.process = process

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()


class LocalLauncher(Launcher):
    """Every shard a subprocess of this machine, talking over loopback."""

    def master_address(self, spec_device: str) -> str:
        return "127.0.0.1"

    def start(self, spec, messages, log_path):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "edgetrain.runtime.device.shard"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, env=shard_environment(spec.socket_ifname or "lo"), text=True,
                start_new_session=True)  # a Ctrl-C reaches the coordinator, which stops the shards itself
        process.stdin.write(spec.to_json())
        process.stdin.close()
        threading.Thread(target=pump_events, args=(spec.rank, process.stdout, process, messages),
                         name=f"shard-{spec.rank}", daemon=True).start()
        return LocalShard(process)
