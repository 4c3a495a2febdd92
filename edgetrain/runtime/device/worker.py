"""The worker daemon: `edgetrain worker --listen ADDR:PORT --token-file F`.

One runs on every device (inside every Mininet host in emulation; started by hand on a real device).
It stays alive between plans and keeps one shard process warm (torch already imported), so that a new
plan starts in a fraction of a second even on a slow device. It authenticates every peer
(runtime/control.py), reports heartbeats with the device's state, and starts and stops shard
processes on the coordinator's request. Garbage from the network is logged and dropped; the daemon
keeps serving.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Optional

from edgetrain.core.rules import HEARTBEAT_EVERY_S, STANDBY_MEMORY_FRACTION
from edgetrain import __version__
from edgetrain.runtime.device.cpu import CpuClock
from edgetrain.runtime.device.energy import hardware_facts
from edgetrain.runtime.device.oom import memory_in_use, oom_kill_count
from edgetrain.runtime.device.power_modes import CpuQuotaModes
from edgetrain.runtime.wire.control import PROTOCOL_VERSION, Channel, ProtocolError, server_handshake
from edgetrain.runtime.wire.spec import ShardSpec, decode_event, shard_environment
from edgetrain.runtime.wire.transfer import Assembly, TransferError, chunk_messages, is_plain_name, start_assembly

log = logging.getLogger("edgetrain.worker")
MAX_SESSIONS = 16
"""Authenticated coordinators served at once."""
MAX_PENDING = 64
"""Handshakes in progress at once; a new connection beyond it evicts the oldest (an honest handshake is
one round trip, so only a peer that drips or stalls is ever evicted)."""
MAX_PENDING_PER_ADDRESS = 8
"""Handshakes in progress from one address; beyond it that address's oldest is evicted, so one noisy
host cannot fill the pending pool for everyone else."""
REFUSALS_LOGGED_PER_MINUTE = 20
# How long a new plan waits for the last plan's processes to finish tearing down their process groups
# (milliseconds, normally) before it kills them and starts a fresh process.
FINISH_GRACE_S = 3.0
STANDBY_NICE = 19
MAX_WARM = 2
"""Warm processes kept: the next plan's and a standby for a recovery. A plan's process that ends cleanly
is kept as one of them, so that a switch of plans imports nothing: a standby importing torch beside a
training shard takes half of an emulated device's CPU quota for ten seconds or more (its nice value does
not help when the two run on different cores of one quota), doubling the first steps of every new plan."""
"""A standby process imports torch at the lowest priority: the training shard beside it loses almost nothing."""


def battery_percent(battery_file: Optional[str]) -> Optional[float]:
    """From the file an emulated device's battery model writes, or the real battery, or None (mains)."""
    if battery_file:
        try:
            value = json.loads(Path(battery_file).read_text()).get("percent")
            return float(value) if isinstance(value, (int, float)) else None
        except (OSError, ValueError, AttributeError):
            return None
    try:
        import psutil
        battery = psutil.sensors_battery()
        return float(battery.percent) if battery is not None else None
    except Exception:
        return None


class Worker:
    def __init__(self, device: str, listen: tuple[str, int], token: bytes, socket_ifname: Optional[str] = None,
                 battery_file: Optional[str] = None, heartbeat_s: float = HEARTBEAT_EVERY_S, log_dir: Optional[str] = None,
                 on_listening: Optional[Callable[[str, int], None]] = None, workdir: Optional[str] = None,
                 cpu_quota_us: Optional[int] = None, cpu_period_us: Optional[int] = None):
        self.device = device
        self.listen = listen
        self.token = token
        self.socket_ifname = socket_ifname
        self.battery_file = battery_file
        self.heartbeat_s = heartbeat_s
        self.log_dir = Path(log_dir) if log_dir else None
        self.on_listening = on_listening
        """Told the address and port the worker listens on (the port the system chose for port 0)."""
        self.store = Path(workdir or default_workdir(device)) / "store"
        """The only folder this worker reads or writes for a coordinator: checkpoints it was sent, the
        checkpoints its shards write, a corpus it was sent. Names on the wire resolve inside it."""
        self.cpu = CpuClock()
        self.power_modes = CpuQuotaModes.detect(cpu_quota_us, cpu_period_us)  # ValueError: a bad top
        """How this device sets a plan's power mode (None: it cannot; a plan with a mode is refused)."""
        if self.power_modes is not None:
            try:
                self.power_modes.reset()  # a worker restarted while its device was in a lower mode
            except OSError as exc:
                log.warning("device %s cannot set its CPU quota (%s): plans with power modes will be refused",
                            device, exc)
                self.power_modes = None
        self.facts = {"version": __version__, "protocol": PROTOCOL_VERSION, **hardware_facts(),
                      "power_modes": self.power_modes.name if self.power_modes else None}
        """What does not change while it runs (edgetrain version, GPUs, hardware meter): said in every state."""
        self.started = time.time()
        self._lock = threading.Lock()
        self._shards: dict[int, subprocess.Popen] = {}
        """Running shards by rank (a process is here from its plan's start until it is done)."""
        self._routes: dict[int, tuple[Channel, int]] = {}
        self._oom_kills_before: dict[int, Optional[int]] = {}
        """By shard pid: the device's OOM-kill count when it took its plan (device/oom.py)."""
        """Per process id: the coordinator channel and rank its events go to (its current plan's)."""
        self._forwarders: dict[int, threading.Thread] = {}
        self._finishing: dict[int, subprocess.Popen] = {}
        """Processes whose plan is done, tearing down their process group; warm again once idle."""
        self._spares: list[subprocess.Popen] = []
        self._warm: set[int] = set()
        """Pids of processes that have finished importing (their `warm` event)."""
        """Warm processes (torch imported) waiting for a plan, oldest first; at most MAX_WARM."""
        self._sessions = threading.BoundedSemaphore(MAX_SESSIONS)
        self._pending: "OrderedDict[socket.socket, str]" = OrderedDict()
        """Connections still in their handshake (oldest first), with their peer address."""
        self._refusals = RefusalLog()
        self._plan_over: dict[int, threading.Event] = {}
        """Per process released from a held plan: set once its last event of that plan was sent."""
        self._incoming: dict[int, Assembly] = {}
        """Per coordinator connection: the file it is sending."""
        self._stopping = threading.Event()
        self.server: Optional[socket.socket] = None

    # --- shard processes -------------------------------------------------------------------------
    # Warm processes are kept (MAX_WARM): a new one is made only when none is left (or a recovering plan
    # asks for a standby and none is left), and a process that finished its plan cleanly is warm again.
    # Importing torch beside a running shard steals the device's CPU (all of it counts against an
    # emulated device's quota), and importing it again for every plan would cost seconds per plan on a
    # small device.
    def _new_shard_process(self, standby: bool = False) -> subprocess.Popen:
        stderr = subprocess.DEVNULL
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            path = self.log_dir / f"shard-{self.device}-{time.time_ns()}.log"  # 0600: it may hold paths, errors
            stderr = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w")
        # `nice` execs the interpreter (same pid); no preexec_fn, which is unsafe in a threaded daemon.
        niced = ["nice", "-n", str(STANDBY_NICE)] if standby and shutil.which("nice") else []
        process = subprocess.Popen([*niced, sys.executable, "-m", "edgetrain.runtime.device.shard"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                   env={**shard_environment(self.socket_ifname), "EDGETRAIN_PRELOAD_CORPUS": "1"},
                                   start_new_session=True)
        if stderr is not subprocess.DEVNULL:
            stderr.close()
        forwarder = threading.Thread(target=self._forward, args=(process,), daemon=True)
        self._forwarders[process.pid] = forwarder
        forwarder.start()
        return process

    def _live_spares(self) -> list[subprocess.Popen]:
        """The warm processes still alive (under the lock)."""
        self._spares = [p for p in self._spares if p.poll() is None]
        return self._spares

    def warm_up(self) -> None:
        with self._lock:
            running = any(p.poll() is None for p in self._shards.values())
            if not self._stopping.is_set() and not running and not self._live_spares():
                self._spares.append(self._new_shard_process())

    def confined(self, spec: ShardSpec) -> ShardSpec:
        """The spec with its file names resolved inside this worker's store; a path, or a file it was
        not sent, is refused (a coordinator cannot make a worker read or write anything else)."""
        changes = {}
        for key, prefix, must_exist in (("resume", "", True), ("data", "", True), ("checkpoint_out", "out-", False)):
            name = getattr(spec, key)
            if name is None:
                continue
            if not is_plain_name(name):
                raise ValueError(f"shard spec field {key!r} must name a file sent to this worker, not a path")
            path = self.store / (prefix + name)
            if must_exist and not path.is_file():
                raise ValueError(f"shard spec field {key!r}: no file {name} was sent to this worker")
            changes[key] = str(path)
        return dataclasses.replace(spec, **changes) if changes else spec

    def start_shard(self, spec: ShardSpec, channel: Channel) -> None:
        deadline = time.monotonic() + FINISH_GRACE_S
        while self._finishing and time.monotonic() < deadline:  # let the last plan's process turn idle
            time.sleep(0.02)
        room_for_a_standby = spec.standby and _room_for_a_standby()  # cgroup files: read outside the lock
        with self._lock:
            for process in self._finishing.values():  # stuck tearing down: not to be trusted again
                _kill(process)
            self._finishing.clear()
            if any(p.poll() is None for p in self._shards.values()):
                raise RuntimeError("a shard is already running on this device; stop it first")
            self._set_power_mode(spec)
            # The newest first: a process that just ended a plan is surely warm, a standby may still import.
            process = self._live_spares().pop() if self._spares else None
            if process is not None:
                _full_priority(process)  # a standby imported at the lowest priority; it trains at the normal one
            process = process or self._new_shard_process()
            self._shards[spec.rank] = process
            self._routes[process.pid] = (channel, spec.rank)
            self._oom_kills_before[process.pid] = oom_kill_count()
            if room_for_a_standby and not self._spares and not self._stopping.is_set():
                # The next plan's process, ready before it is needed (a recovery or a switch then starts in
                # a second); only when no warm process is left: it imports torch on the device's CPU.
                self._spares.append(self._new_shard_process(standby=True))
        try:
            process.stdin.write(spec.to_json() + "\n")
            process.stdin.flush()
        except OSError:
            raise RuntimeError("the shard process died before it got its plan") from None

    def _set_power_mode(self, spec: ShardSpec) -> None:
        """The device in the plan's power mode (its top mode for a plan without one), before the plan's
        process gets its spec (under the lock)."""
        if self.power_modes is None:
            if spec.power_mode is not None:
                raise RuntimeError(f"device {self.device} cannot set power mode {spec.power_mode}: only an "
                                   f"emulated device (a CPU cgroup with a quota) can yet, not nvpmodel")
            return
        try:
            self.power_modes.set(spec.power_speed)
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"device {self.device} could not set power mode {spec.power_mode or 'max'}: {exc}") from None

    def _top_power_mode_when_idle(self) -> None:
        """A plan is over: back to the top mode unless another plan's shard runs (under the lock). A
        device in a lower mode between plans would make its warm processes, a calibration and the next
        plan's first moments slower than their prices."""
        if self.power_modes is not None and not any(p.poll() is None for p in self._shards.values()):
            try:
                self.power_modes.reset()
            except OSError:
                pass  # the next plan sets its mode, or says why it cannot

    def _forward(self, process: subprocess.Popen) -> None:
        """Relay one process's events, for its whole life, to the coordinator of its current plan."""
        try:
            for line in process.stdout:
                event = decode_event(line.rstrip("\n"))
                if event is None:
                    continue
                with self._lock:
                    route = self._routes.get(process.pid)
                    if event["event"] == "warm":  # the worker's own business, not a plan's
                        self._warm.add(process.pid)
                        route = None
                    elif event["event"] == "done":  # its plan is over; it tears down, then says idle
                        self._routes.pop(process.pid, None)
                        for rank, running in list(self._shards.items()):
                            if running is process:
                                del self._shards[rank]
                        self._finishing[process.pid] = process
                        self._top_power_mode_when_idle()
                    elif event["event"] == "idle":  # warm again: it can take the next plan
                        route = None
                        if self._finishing.pop(process.pid, None) is not None:
                            if len(self._live_spares()) < MAX_WARM:
                                self._spares.append(process)
                            else:
                                process.stdin.close()  # enough warm processes: this one ends
                if route is not None:
                    if event["event"] == "checkpoint":  # the file first, then the news: nothing is shared
                        event = self._send_checkpoint(route[0], event)
                    route[0].send({"type": "event", "event": event})
                if event["event"] == "done" and process.pid in self._plan_over:
                    self._plan_over[process.pid].set()  # a release waits for this
            code = process.wait()
            with self._lock:
                route = self._routes.pop(process.pid, None)
                self._top_power_mode_when_idle()
            before = self._oom_kills_before.pop(process.pid, None)
            if route is not None:
                after = oom_kill_count() if code != 0 else None
                route[0].send({"type": "exit", "rank": route[1], "code": code,
                               "out_of_memory": int(before is not None and after is not None and after > before)})
        except OSError:
            process.kill()  # the coordinator is gone: a shard nobody listens to must not keep running
        finally:
            with self._lock:
                self._forwarders.pop(process.pid, None)
                self._finishing.pop(process.pid, None)
                self._warm.discard(process.pid)
            if not self._stopping.is_set():
                self.warm_up()

    def order_shards(self, order: dict) -> bool:
        """Tell this device's running shard (a held plan) to go on or to end; False when none runs. A
        release returns once the shard's last event went out (the coordinator's next plan sees none of it)."""
        with self._lock:
            running = [p for p in self._shards.values() if p.poll() is None]
            if "release" in order:
                for process in running:
                    self._plan_over[process.pid] = threading.Event()
        for process in running:
            try:
                process.stdin.write(json.dumps(order) + "\n")
                process.stdin.flush()
            except OSError:
                return False
        if "release" in order:
            deadline = time.monotonic() + FINISH_GRACE_S
            for process in running:
                if not self._plan_over[process.pid].wait(max(deadline - time.monotonic(), 0.0)):
                    _kill(process)  # it did not end its plan: not to be trusted with another
                self._plan_over.pop(process.pid, None)
        return bool(running)

    def _send_checkpoint(self, channel: Channel, event: dict) -> dict:
        """Send the checkpoint a shard wrote to the coordinator; the event then names it as sent."""
        path = Path(event["path"])
        name = path.name[len("out-"):] if path.name.startswith("out-") else path.name
        for message in chunk_messages("chunk", name, path):
            channel.send(message)
        return {**event, "path": name}

    def _receive_file(self, channel: Channel, message: dict) -> None:
        name = message["name"]
        if not is_plain_name(name):
            raise ProtocolError("a file name on the wire must not be a path")
        key = id(channel)  # one transfer at a time per coordinator connection
        try:
            self._incoming[key] = start_assembly(message, self.store / name, self._incoming.get(key))
            if self._incoming[key].add(message):
                del self._incoming[key]
                channel.send({"type": "stored", "name": name})
                self._prune_store()
        except TransferError as exc:
            self._incoming.pop(key, None)
            channel.send({"type": "refused", "reason": f"{name}: {exc}"})

    def _prune_store(self, keep: int = 6) -> None:
        """Files sent here are named by their content and pile up over a deployment: keep the newest."""
        files = sorted((p for p in self.store.iterdir() if p.is_file() and not p.name.startswith((".", "out-"))),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[keep:]:
            old.unlink(missing_ok=True)

    def stop_shards(self) -> None:
        """Kill every running shard (warm ones stay) and wait until their exits have been sent: a
        coordinator that reads `stopped` has seen the last word of this plan's shards."""
        with self._lock:
            shards, self._shards = list(self._shards.values()), {}
            forwarders = [self._forwarders[p.pid] for p in shards if p.pid in self._forwarders]
        for process in shards:
            _kill(process)
            process.wait()
        for forwarder in forwarders:
            forwarder.join(timeout=10)

    # --- state -----------------------------------------------------------------------------------
    def state(self) -> dict:
        with self._lock:
            running = sum(1 for p in self._shards.values() if p.poll() is None)
            spares = self._live_spares()
            importing = sum(1 for p in spares if p.pid not in self._warm)
        try:
            import psutil
            memory_mb = psutil.virtual_memory().available / 2 ** 20
        except Exception:
            memory_mb = None
        return {"device": self.device, "time": time.time(), "uptime_s": time.time() - self.started,
                "cpu_s": self.cpu.seconds(), "cpu_source": self.cpu.source, "load": os.getloadavg()[0],
                "memory_available_mb": memory_mb, "memory_in_use": memory_in_use(), "battery_pct": battery_percent(self.battery_file),
                "shards_running": running, "spares_importing": importing, "spares_warm": len(spares) - importing,
                **self.facts}

    # --- network ---------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        self.server = socket.create_server(self.listen, reuse_port=False)
        self.server.listen(64)
        host, port = self.server.getsockname()[:2]
        if self.on_listening is not None:
            self.on_listening(host, port)
        else:
            log.info("worker %s listening on %s:%d", self.device, host, port)
        self.warm_up()
        while not self._stopping.is_set():
            try:
                conn, peer = self.server.accept()
            except OSError:
                break
            self._admit(conn, peer[0])
            threading.Thread(target=self._serve_connection, args=(conn, f"{peer[0]}:{peer[1]}"),
                             daemon=True).start()

    def _admit(self, conn: socket.socket, address: str) -> None:
        """Take a new connection into the handshake pool, evicting the oldest pending one of its address
        (or of all) when the pool is full: peers that never finish cannot lock out one that does."""
        with self._lock:
            same = [c for c, a in self._pending.items() if a == address]
            victim = same[0] if len(same) >= MAX_PENDING_PER_ADDRESS else (
                next(iter(self._pending)) if len(self._pending) >= MAX_PENDING else None)
            if victim is not None:
                del self._pending[victim]
                _hang_up(victim)  # its thread's recv returns at once and the thread ends
            self._pending[conn] = address

    def shutdown(self) -> None:
        self._stopping.set()
        if self.server is not None:
            self.server.close()
        self.stop_shards()
        with self._lock:
            for process in [*self._spares, *self._finishing.values()]:
                _kill(process)

    def _serve_connection(self, conn: socket.socket, peer: str) -> None:
        channel, session = None, False
        try:
            try:
                channel = server_handshake(conn, self.token, self.device, peer)
            finally:
                with self._lock:
                    evicted = self._pending.pop(conn, None) is None
            if evicted:
                raise ProtocolError("evicted: more handshakes in progress than the worker takes")
            session = self._sessions.acquire(blocking=False)
            if not session:
                raise ProtocolError(f"refused: {MAX_SESSIONS} coordinators are served already")
            log.info("coordinator %s authenticated", peer)
            alive = threading.Event()
            threading.Thread(target=self._heartbeats, args=(channel, alive), daemon=True).start()
            try:
                self._handle(channel)
            finally:
                alive.set()
        except ProtocolError as exc:
            self._refusals.refused(peer, str(exc))
        except (ConnectionError, OSError, socket.timeout):
            pass
        except Exception as exc:  # whatever a peer sends, the daemon logs one line and keeps serving
            self._refusals.refused(peer, f"{type(exc).__name__}: {exc}")
        finally:
            (channel.close() if channel else conn.close())
            if session:
                self._sessions.release()

    def _heartbeats(self, channel: Channel, closed: threading.Event) -> None:
        while not closed.wait(self.heartbeat_s):
            try:
                channel.send({"type": "heartbeat", "state": self.state()})
            except OSError:
                return

    def _handle(self, channel: Channel) -> None:
        self.store.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._serve_requests(channel)
        finally:
            unfinished = self._incoming.pop(id(channel), None)
            if unfinished is not None:
                unfinished.abandon()

    def _serve_requests(self, channel: Channel) -> None:
        while True:
            message = channel.receive()
            kind = message["type"]
            if kind == "status":
                channel.send({"type": "state", "state": self.state()})
            elif kind == "stop":
                self.stop_shards()
                channel.send({"type": "stopped"})
            elif kind in ("extend", "release"):  # a held plan goes on, or ends as a finished one does
                if kind == "extend" and not 0 < message["steps"] <= 10 ** 9:
                    channel.send({"type": "refused", "reason": "steps out of range"})
                elif self.order_shards({"continue": message["steps"]} if kind == "extend" else {"release": True}):
                    channel.send({"type": "extended"} if kind == "extend" else {"type": "stopped"})
                else:
                    channel.send({"type": "refused", "reason": "no held shard on this device"})
            elif kind == "have":
                path = self.store / message["name"]
                present = is_plain_name(message["name"]) and path.is_file()
                channel.send({"type": "has", "name": message["name"][:128], "size": path.stat().st_size if present else -1})
            elif kind == "put":
                self._receive_file(channel, message)
            elif kind == "fetch":  # the coordinator's copy of a checkpoint arrived corrupted: again
                name = message["name"]
                path = self.store / ("out-" + name)
                if not is_plain_name(name) or not path.is_file():
                    channel.send({"type": "refused", "reason": "no such checkpoint to fetch"})
                else:
                    for chunk in chunk_messages("chunk", name, path):
                        channel.send(chunk)
            elif kind == "start":
                try:
                    spec = self.confined(ShardSpec.from_json(json.dumps(message["spec"])))
                    self.start_shard(spec, channel)
                    channel.send({"type": "started", "rank": spec.rank})
                except (ValueError, TypeError, RuntimeError) as exc:
                    channel.send({"type": "refused", "reason": str(exc)[:300]})
            else:
                raise ProtocolError(f"a coordinator does not send {kind}")


def default_workdir(device: str) -> Path:
    return Path.home() / ".edgetrain" / "worker" / device


class RefusalLog:
    """One line per refused peer, its text escaped (a peer's bytes never start a forged line), at most
    REFUSALS_LOGGED_PER_MINUTE lines a minute; the rest are counted and said in one line later."""

    def __init__(self, per_minute: int = REFUSALS_LOGGED_PER_MINUTE, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.clock = clock
        self._lock = threading.Lock()
        self._window_start = clock()
        self._logged = 0
        self._suppressed = 0

    def refused(self, peer: str, reason: str) -> bool:
        """Log the refusal unless over the rate; True when it was logged."""
        with self._lock:
            now = self.clock()
            if now - self._window_start >= 60.0:
                if self._suppressed:
                    log.warning("%d more refused peers not logged in the last minute", self._suppressed)
                self._window_start, self._logged, self._suppressed = now, 0, 0
            if self._logged >= self.per_minute:
                self._suppressed += 1
                return False
            self._logged += 1
        log.warning("rejected peer %s: %s", ascii(peer)[1:-1], ascii(reason[:200])[1:-1])
        return True


def _room_for_a_standby() -> bool:
    """Whether a standby may start beside a plan's shard (rules.STANDBY_MEMORY_FRACTION)."""
    in_use = memory_in_use()
    return in_use is None or in_use < STANDBY_MEMORY_FRACTION


def _full_priority(process: subprocess.Popen) -> None:
    """Every thread of a standby process back to the worker's own priority (raising a priority needs root
    or CAP_SYS_NICE; without, it stays low: a device with nothing else to run loses nothing by it)."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        if os.getpriority(os.PRIO_PROCESS, process.pid) == own:
            return
        for tid in os.listdir(f"/proc/{process.pid}/task"):
            os.setpriority(os.PRIO_PROCESS, int(tid), own)
    except (PermissionError, FileNotFoundError, ProcessLookupError):
        pass


def _hang_up(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_worker(device: str, listen: tuple[str, int], token: bytes, **kwargs) -> None:
    worker = Worker(device, listen, token, **kwargs)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        worker.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        worker.shutdown()
