"""The coordinator's side of the control plane: a client per worker daemon, and a launcher that starts
shards through them. Used for the mininet backend (workers inside emulated hosts) and for real devices."""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from edgetrain.core.errors import DeviceLost, RunError
from edgetrain.core.rules import HEARTBEAT_TIMEOUT_S, MEMORY_STALL_FRACTION
from edgetrain.runtime.coordinator.launcher import Launcher, ShardHandle, ShardMessage
from edgetrain.runtime.wire.control import Channel, ProtocolError, connect
from edgetrain.runtime.wire.spec import EVENT_SCHEMA, ShardSpec
from edgetrain.runtime.wire.transfer import Assembly, TransferError, chunk_messages, content_name, start_assembly


class WorkerClient:
    """An authenticated connection to one worker; follows its heartbeats and relays its shard events."""

    def __init__(self, device: str, address: tuple[str, int], token: bytes, connect_timeout_s: float = 10.0):
        self.device = device
        self.address = address
        self.channel: Channel
        self.channel, remote_device = connect(address, token, timeout_s=connect_timeout_s)
        if remote_device != device:
            self.channel.close()
            raise ProtocolError(f"the worker at {address[0]}:{address[1]} is {remote_device!r}, not {device!r}")
        self.last_seen = time.monotonic()
        self.longest_silence_s = 0.0
        """The longest gap between two messages from this worker so far (what a heartbeat timeout must
        tolerate on a loaded device; the recovery benchmark reports it)."""
        self.state: dict = {}
        self.connected = True
        self._messages: Optional["queue.Queue[ShardMessage]"] = None
        self._rank: Optional[int] = None
        self._replies: "queue.Queue[dict]" = queue.Queue()
        self.outputs: dict[str, Path] = {}
        """Checkpoint name on the wire -> where it lands here (the coordinator owns the job's state)."""
        self._arriving: Optional[Assembly] = None
        self._verified: set[str] = set()
        """Checkpoints received whole since their last event was passed on."""
        self._held: dict[str, dict] = {}
        """Checkpoint events whose file arrived corrupted: passed on once the re-sent copy is verified."""
        self._sent: dict[tuple[str, float, int], str] = {}
        """(path, mtime, size) -> its name on the wire: files are hashed once."""
        threading.Thread(target=self._read, name=f"worker-{device}", daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                message = self.channel.receive()
                now = time.monotonic()
                self.longest_silence_s = max(self.longest_silence_s, now - self.last_seen)
                self.last_seen = now
                kind = message["type"]
                if kind in ("heartbeat", "state"):
                    self.state = message["state"]
                    if kind == "state":
                        self._replies.put(message)
                elif kind == "chunk":
                    self._receive_chunk(message)
                elif kind == "event":
                    event = message["event"]
                    schema = EVENT_SCHEMA.get(event.get("event"))
                    if schema is not None and all(k in event for k in schema) and event["event"] == "checkpoint":
                        event = self._arrived(event)
                    if self._messages is not None and event is not None and schema is not None \
                            and all(k in event for k in schema):
                        self._messages.put(ShardMessage(event["rank"], event=event))
                elif kind == "exit":
                    if self._messages is not None:
                        self._messages.put(ShardMessage(message["rank"], exit_code=message["code"],
                                                        out_of_memory=bool(message["out_of_memory"])))
                else:
                    self._replies.put(message)
        except (ProtocolError, ConnectionError, OSError, ValueError):
            pass
        finally:
            self.connected = False
            self._replies.put({"type": "closed"})

    # --- files: checkpoints come here, resumed checkpoints go there --------------------------------
    def _receive_chunk(self, message: dict) -> None:
        name = message["name"]
        destination = self.outputs.get(name)
        if destination is None:
            return  # nobody asked for this file
        try:
            self._arriving = start_assembly(message, _incoming(destination), self._arriving)
            if self._arriving.add(message):
                self._arriving = None
                self._verified.add(name)
                held = self._held.pop(name, None)
                if held is not None:
                    self._verified.discard(name)
                    os.replace(_incoming(destination), destination)
                    if self._messages is not None:
                        self._messages.put(ShardMessage(held["rank"], event=held))
        except TransferError:
            self._arriving = None
            self._verified.discard(name)
            self.channel.send({"type": "fetch", "name": name})  # never loaded: asked for again

    def _arrived(self, event: dict) -> Optional[dict]:
        """A checkpoint event names the file it sent before it; pass it on with the file's path here once
        the file is here whole, else hold it until the re-sent copy is."""
        name = event["path"]
        destination = self.outputs.get(name)
        if destination is None:
            return None
        event = {**event, "path": str(destination)}
        if name in self._verified:
            # Only now does the file take the checkpoint's place: the file there is always the one of
            # the last checkpoint event passed on (a recovery resumes from what the metrics say).
            self._verified.discard(name)
            os.replace(_incoming(destination), destination)
            return event
        self._held[name] = event
        return None

    def ensure(self, path: Path, attempts: int = 3) -> str:
        """Make sure the worker holds this file (sending it if not); returns its name on the wire."""
        path = Path(path)
        info = path.stat()
        key = (str(path.resolve()), info.st_mtime, info.st_size)
        if key not in self._sent:
            self._sent[key] = content_name(path)
        name = self._sent[key]
        if self._request({"type": "have", "name": name})["size"] == info.st_size:
            return name
        for _ in range(attempts):
            for message in chunk_messages("put", name, path):
                self.channel.send(message)
            reply = self._replies.get(timeout=max(30.0, info.st_size / 1e6))
            if reply["type"] == "stored":
                return name
            if reply["type"] == "closed":
                raise ConnectionError(f"worker {self.device} closed the connection")
        raise ConnectionError(f"worker {self.device} did not receive {path.name} whole in {attempts} attempts")

    def _request(self, message: dict, timeout_s: float = 30.0) -> dict:
        self.channel.send(message)
        try:
            reply = self._replies.get(timeout=timeout_s)
        except queue.Empty:
            raise ConnectionError(f"worker {self.device} did not answer {message['type']}") from None
        if reply["type"] == "closed":
            raise ConnectionError(f"worker {self.device} closed the connection")
        return reply

    def status(self) -> dict:
        return self._request({"type": "status"})["state"]

    def start(self, spec: ShardSpec, messages: "queue.Queue[ShardMessage]") -> None:
        self._messages, self._rank = messages, spec.rank
        reply = self._request({"type": "start", "spec": ShardSpec.from_json(spec.to_json()).__dict__})
        if reply["type"] != "started":  # it answered: a refusal (a mode it cannot set, a bad spec), not a loss
            raise RunError(f"worker {self.device} refused the shard: {reply.get('reason', reply['type'])}")

    def stop(self) -> None:
        """Ask the worker to stop its shard, and wait for it to say so; but not a worker whose heartbeats
        have stopped (cut off the network, no reset): nobody would answer, and waiting for the reply
        delayed every recovery from such a device by the request's timeout."""
        if self.connected and self.silent_for() <= HEARTBEAT_TIMEOUT_S:
            try:
                self._request({"type": "stop"}, timeout_s=10.0)
            except (ConnectionError, OSError):
                pass
        self._messages = None

    def silent_for(self) -> float:
        return time.monotonic() - self.last_seen

    def close(self) -> None:
        self.channel.close()


def _incoming(destination: Path) -> Path:
    return destination.with_name(f".{destination.name}.incoming")


class RemoteShard(ShardHandle):
    def __init__(self, client: WorkerClient):
        self.client = client

    def kill(self) -> None:
        self.client.stop()

    def extend(self, steps: int) -> None:
        try:
            reply = self.client._request({"type": "extend", "steps": steps}, timeout_s=10.0)
        except (ConnectionError, OSError):
            reply = {"type": "closed"}
        if reply["type"] != "extended":  # the device is gone or its shard is: the job notices and recovers
            raise DeviceLost([self.client.device], step=0, detected_at=time.monotonic())

    def release(self) -> None:
        if self.client.connected and self.client.silent_for() <= HEARTBEAT_TIMEOUT_S:
            try:
                if self.client._request({"type": "release"}, timeout_s=10.0)["type"] == "stopped":
                    self.client._messages = None
                    return
            except (ConnectionError, OSError):
                pass
        self.client.stop()


class RemoteLauncher(Launcher):
    """Shards started by worker daemons at known addresses. A device counts as lost when its
    connection breaks or its heartbeats stop for `heartbeat_timeout_s`; a device whose worker comes
    back (it was offline, or restarted) is reconnected when it is next asked for."""

    supports_hold = True
    supports_power_modes = True  # each worker sets its own, or refuses the plan saying why

    def __init__(self, addresses: dict[str, tuple[str, int]], token: bytes, heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S):
        self.addresses = addresses
        self.token = token
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.clients: dict[str, WorkerClient] = {}
        self.refused: dict[str, str] = {}
        """Devices whose peer failed authentication (or is another device), with why: never trusted."""

    def connect_all(self, timeout_s: float = 10.0) -> None:
        devices = list(self.addresses)
        with ThreadPoolExecutor(max_workers=max(len(devices), 1)) as pool:  # one timeout in all, not one each
            list(pool.map(lambda d: self._client(d, timeout_s), devices))

    def _client(self, device: str, timeout_s: float = 2.0) -> Optional[WorkerClient]:
        client = self.clients.get(device)
        if client is not None and client.connected and client.silent_for() <= self.heartbeat_timeout_s:
            return client
        if client is not None:
            client.close()
            del self.clients[device]
        try:
            self.clients[device] = WorkerClient(device, self.addresses[device], self.token, timeout_s)
        except (OSError, ConnectionError):
            return None  # not there (yet)
        except ProtocolError as exc:
            self.refused[device] = str(exc)
            return None
        self.refused.pop(device, None)
        return self.clients[device]

    def master_address(self, spec_device: str) -> str:
        return self.addresses[spec_device][0]

    def start(self, spec, messages, log_path: Path):
        client = self._client(spec.device, timeout_s=5.0)
        if client is None:
            raise DeviceLost([spec.device], step=0, detected_at=time.monotonic())  # step: set by run_job
        try:
            spec = self._over_the_wire(client, spec)
        except (ConnectionError, OSError, queue.Empty):
            raise DeviceLost([spec.device], step=0, detected_at=time.monotonic()) from None
        client.start(spec, messages)
        return RemoteShard(client)

    @staticmethod
    def _over_the_wire(client: WorkerClient, spec: ShardSpec) -> ShardSpec:
        """The spec as a device sees it: the checkpoint to resume and the corpus sent to it and named,
        the checkpoint to write named, and its copy here registered for when it comes back."""
        changes = {}
        for key in ("resume", "data"):
            if getattr(spec, key):
                changes[key] = client.ensure(Path(getattr(spec, key)))
        if spec.checkpoint_out:
            name = "checkpoint.pt"
            client.outputs[name] = Path(spec.checkpoint_out)
            changes["checkpoint_out"] = name
        return dataclasses.replace(spec, **changes) if changes else spec

    def _silent(self, device: str) -> bool:
        return self.clients[device].silent_for() > self.heartbeat_timeout_s

    def lost_devices(self, devices: list[str]) -> list[str]:
        return [d for d in devices if d not in self.clients or not self.clients[d].connected or self._silent(d)]

    def silent_but_connected(self, devices: list[str]) -> list[str]:
        return [d for d in devices if d in self.clients and self.clients[d].connected and self._silent(d)]

    def memory_nearly_full(self, devices: list[str]) -> list[str]:
        return [d for d in devices if d in self.clients
                and (self.clients[d].state.get("memory_in_use") or 0.0) >= MEMORY_STALL_FRACTION]

    def available_devices(self, devices: list[str]) -> list[str]:
        """The devices that answer now. Those not connected are probed all at once (a device that is
        gone costs one connection timeout in all, not one each: recovery waits on this)."""
        known = [d for d in devices if d in self.addresses]
        with ThreadPoolExecutor(max_workers=max(len(known), 1)) as pool:
            answers = list(pool.map(lambda d: self._client(d) is not None, known))
        return [d for d, there in zip(known, answers) if there]

    def ready_devices(self, devices: list[str]) -> list[str]:
        """The devices that answer now and can start a shard at once: a shard runs there, or a process
        waits warm (torch imported). A worker that has just come back (its device returned, or it was
        restarted) imports torch for its first process: 14-22 s on the testbed's 0.15-share device
        (measured in a deployment). A plan that took the device then would wait that long, where the
        devices already warm could have trained meanwhile."""
        return [d for d in self.available_devices(devices) if is_warm(self.clients[d].state)]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients = {}


def is_warm(state: dict) -> bool:
    """From a worker's last reported state: can it start a shard without importing first? Unknown (no
    heartbeat yet) is not warm."""
    if not state:
        return False
    return state.get("shards_running", 0) > 0 or state.get("spares_warm", 0) > 0
