"""The coordinator runs one plan: it checks it, starts one shard per device through a launcher, follows
their events, and turns them into the run's metrics. Only the coordinator writes metrics."""

from __future__ import annotations

import queue
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from edgetrain.core.config import Scenario
from edgetrain.core.errors import DeviceLost, OutOfMemory, RunError, UserError
from edgetrain.core.feasibility import check_plan
from edgetrain.core.plans import HYBRID, Plan
from edgetrain.runtime.coordinator.launcher import Launcher, ShardHandle, ShardMessage
from edgetrain.runtime.coordinator.metrics import RunMetrics
from edgetrain.runtime.training.checkpoint import check_compatible, load_checkpoint
from edgetrain.runtime.wire.spec import ShardSpec


@dataclass
class Job:
    scenario: Scenario
    plan: Plan
    steps: int
    run_dir: Path
    seed: int = 0
    data: Optional[str] = None
    resume: Optional[str] = None
    checkpoint_out: Optional[str] = None
    checkpoint_every: int = 0
    hardware_meter: bool = False
    device_cores: dict[str, float] = field(default_factory=dict)
    """CPU capacity per device for the profile meter; 1.0 (one thread) when not given."""
    socket_ifnames: dict[str, str] = field(default_factory=dict)
    master_port: Optional[int] = None
    stall_timeout_s: float = 600.0
    """Fail when no shard reports anything for this long."""
    mode: str = "train"
    """train, or calibrate: every device of the plan measures itself and its links (no training)."""
    faults: dict[int, str] = field(default_factory=dict)
    """Fault injection for tests and demos: after step N completes, kill device D's worker."""
    standby: bool = False
    """Ask each device to keep a standby process warm while this plan trains (recovering jobs do)."""
    hold: bool = False
    """Keep the plan's shards after the last step (in `session`), so that a next job on the same plan from
    this step goes on in them: no restart, no reload (launchers that can; workers can)."""


@dataclass
class HeldPlan:
    """Shards that trained a plan up to `step` and wait for more (spec `hold`)."""

    plan: Plan
    step: int
    handles: list[ShardHandle]
    messages: "queue.Queue[ShardMessage]"
    ready: dict[str, dict]
    """Per device: what its shard said when it started (meter, CPU clock, corpus), for the next job's metrics."""
    master_port: int
    checkpoint: Optional[str] = None
    """Where its last step's checkpoint lands (the job's checkpoint_out); it may still be on its way: a
    held shard says `held` before it writes that checkpoint, which then travels while the coordinator
    decides."""


class PlanSession:
    """At most one held plan between jobs (a deployment's decisions): a job on the same plan from the step
    it stopped at goes on in it; any other job releases it first. Checkpoint events of a released plan
    that came after its last job (its last step's, written after `held`) are kept in `late_checkpoints`
    for the next job's metrics."""

    def __init__(self):
        self.held: Optional[HeldPlan] = None
        self.late_checkpoints: list[dict] = []

    def continuing(self, plan: Plan, resume: Optional[str]) -> Optional[HeldPlan]:
        """The held plan, when a job of `plan` resuming from `resume` goes on in it: the same plan, from
        the checkpoint its last step writes (whether or not that file is here yet)."""
        held = self.held
        if held is not None and held.plan == plan and resume is not None and held.checkpoint == str(resume):
            return held
        return None

    def take(self, plan: Plan, step: int) -> Optional[HeldPlan]:
        held, self.held = self.held, None
        if held is not None and held.plan == plan and held.step == step:
            return held
        if held is not None:
            self._release(held)
        return None

    def keep(self, held: HeldPlan) -> None:
        if self.held is not None:
            self._release(self.held)
        self.held = held

    def release(self) -> None:
        if self.held is not None:
            self._release(self.held)
            self.held = None

    def _release(self, held: HeldPlan) -> None:
        """A worker answers a release after its shard's last events (its last checkpoint among them),
        so they are all queued when this returns."""
        for handle in held.handles:
            handle.release()
        self.late_checkpoints.extend(_checkpoint_events(held.messages))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


ProgressFn = Callable[[str], None]
FaultFn = Callable[[str], None]
POLL_S = 0.25


def run_job(job: Job, launcher: Launcher, progress: ProgressFn = lambda line: None,
            inject_fault: Optional[FaultFn] = None, metrics: Optional[RunMetrics] = None,
            session: Optional[PlanSession] = None) -> RunMetrics:
    """Train `job.steps` steps of `job.plan`. Raises DeviceLost (with the partial metrics attached) when
    devices of the plan vanish, RunError when a shard fails for another reason. With a `session` and
    `job.hold`, the shards are kept afterwards, and a held plan that matches goes on instead of starting."""
    if job.steps < 1:
        raise RunError("--steps must be at least 1")
    job.plan.check_devices(job.scenario.device_names)
    if job.plan.modes and not launcher.supports_power_modes:
        device = next(d for d in job.plan.devices if job.plan.mode(d))
        raise UserError(f"plan {job.plan}: a power mode ({device}~{job.plan.mode(device)}) is set by the device's "
                        f"worker: use the testbed (--backend mininet); the local backend cannot")
    if job.mode == "train" or job.plan.modes:
        check_plan(job.plan, job.scenario)
    start_step = 0
    resumed_corpus = None
    hold = job.hold and session is not None and launcher.supports_hold
    continuing = session.continuing(job.plan, job.resume) if hold else None
    if continuing is not None:  # its shards hold the state: the checkpoint file need not be here yet
        start_step = continuing.step
    elif session is not None:
        session.release()  # a held plan this job does not go on in ends first: its last checkpoint lands
    if continuing is None and job.resume:
        payload = load_checkpoint(job.resume)
        check_compatible(payload, job.resume, job.scenario.model, job.seed)
        start_step, resumed_corpus = payload["step"], payload.get("corpus")
        del payload
    held = session.take(job.plan, start_step) if hold else None
    model_fields = {k: v for k, v in asdict(job.scenario.model).items() if k != "vocab_size"}
    master = launcher.master_address(job.plan.devices[0])
    port = held.master_port if held else job.master_port or free_port()
    specs = [
        ShardSpec(rank=rank, world_size=job.plan.degree, kind=job.plan.kind, device=device, master_addr=master,
                  master_port=port, model=model_fields, seed=job.seed, steps=job.steps,
                  profile=job.scenario.device(device).profile, cores=job.device_cores.get(device, 1.0),
                  data=job.data, resume=job.resume, checkpoint_out=job.checkpoint_out,
                  checkpoint_every=job.checkpoint_every, hardware_meter=job.hardware_meter,
                  socket_ifname=job.socket_ifnames.get(device), mode=job.mode, hold=hold, standby=job.standby,
                  layout=str(job.plan) if job.plan.kind == HYBRID else None, **_power_mode_fields(job, device))
        for rank, device in enumerate(job.plan.devices)
    ]
    if metrics is None:  # else: a recovery continues the run's metrics
        metrics = RunMetrics(plan="", scenario=job.scenario.name, devices=[],
                             batch_size=job.scenario.model.batch_size, start_step=start_step)
    metrics.begin_plan(str(job.plan), list(job.plan.devices), start_step)
    if session is not None:  # the last checkpoints of a plan released on the way here
        for event in session.late_checkpoints:
            _add_checkpoint(metrics, event)
        session.late_checkpoints.clear()
    target_step = start_step + job.steps
    messages: "queue.Queue[ShardMessage]" = held.messages if held else queue.Queue()
    handles: list[ShardHandle] = []
    started = time.perf_counter()
    kept = False
    try:
        if held is not None:
            progress(f"continuing {job.plan} for {job.steps} steps from step {start_step} (shards kept)")
            handles = held.handles
            for device, ready in held.ready.items():
                metrics.add_ready(device, {**ready, "startup_s": 0.0})
            for handle in handles:
                handle.extend(job.steps)
        else:
            progress(f"starting {job.plan.degree} shard(s) for {job.plan} ({job.steps} steps from step {start_step})")
            for spec in specs:
                handles.append(launcher.start(spec, messages, job.run_dir / f"shard-{spec.rank}-{spec.device}.log"))
        ready = _follow(job, launcher, metrics, messages, progress, inject_fault, target_step, resumed_corpus,
                        until="held" if hold else "done")
        if hold:
            session.keep(HeldPlan(job.plan, target_step, handles, messages, {**(held.ready if held else {}), **ready},
                                  port, job.checkpoint_out))
            kept = True
    except DeviceLost as lost:
        lost.metrics = metrics
        lost.step = metrics.last_step
        raise
    finally:
        if not kept:
            for handle in handles:
                handle.kill()
            _keep_late_checkpoints(messages, metrics)
        metrics.wall_s += time.perf_counter() - started
    return metrics


def _power_mode_fields(job: Job, device: str) -> dict:
    """The shard spec's power mode of `device` under the job's plan (none for its top mode)."""
    mode = job.scenario.device(device).power_mode(job.plan.mode(device))
    return {} if mode is None else {"power_mode": mode.name, "power_speed": mode.speed, "power_scale": mode.power}


def _drain(messages: "queue.Queue[ShardMessage]") -> list[ShardMessage]:
    """Every message queued now, in order."""
    queued = []
    while True:
        try:
            queued.append(messages.get_nowait())
        except queue.Empty:
            return queued


def _checkpoint_events(messages: "queue.Queue[ShardMessage]") -> list[dict]:
    """The checkpoint events queued in `messages` (the rest is dropped: its plan is over)."""
    return [m.event for m in _drain(messages) if m.event is not None and m.event["event"] == "checkpoint"]


def _add_checkpoint(metrics: RunMetrics, event: dict) -> None:
    """A checkpoint whose file is here whole, unless the metrics know a later one."""
    if all(event["step"] > c["step"] for c in metrics.checkpoints):
        metrics.checkpoints.append({"step": event["step"], "path": event["path"], "time_s": event["time_s"]})


def _keep_late_checkpoints(messages: "queue.Queue[ShardMessage]", metrics: RunMetrics) -> None:
    """Checkpoints that arrived while the plan was being stopped (a device was lost, or the last step
    came): their files are here whole, so a recovery resumes from the latest (no checkpointed step is
    lost). A worker answers a stop only after its shards' last events, so they are all queued by now."""
    for event in _checkpoint_events(messages):
        _add_checkpoint(metrics, event)


def _check_devices(job: Job, launcher: Launcher, metrics: RunMetrics) -> None:
    lost = launcher.lost_devices(list(job.plan.devices))
    if lost:
        raise DeviceLost(lost, metrics.last_step, time.monotonic())


def _shard_failed(job: Job, launcher: Launcher, metrics: RunMetrics, reason: str,
                  messages: "queue.Queue[ShardMessage]") -> RunError:
    """A shard died. If a device vanished, that is the cause (its peers fail with it): give heartbeats
    the time to tell before blaming the shard. If a device's kernel killed its shard for memory, that
    is the cause (_why_lost)."""
    deadline = time.monotonic() + getattr(launcher, "heartbeat_timeout_s", 0.0) + 1.0
    while True:
        oom = _queued_oom(job, metrics, messages)
        if oom is not None:
            return oom
        try:
            _check_devices(job, launcher, metrics)
        except DeviceLost as lost:
            return _why_lost(job, launcher, metrics, lost, messages)
        if time.monotonic() >= deadline:
            return RunError(reason)
        time.sleep(POLL_S)


def _why_lost(job: Job, launcher: Launcher, metrics: RunMetrics, lost: DeviceLost,
              messages: "queue.Queue[ShardMessage]") -> RunError:
    """A device stopped answering. If its kernel killed its shard for memory, that is the cause, also
    when it went silent first: a memory cgroup at its cap stalls its worker (pages evicted) before the
    kill (its worker's heartbeats with it; measured on the testbed: the cap 0.985 full at the kill). The
    OOM test's "device lost" in two CI runs turned out to be a standby pushing its device over the cap
    (rules.STANDBY_MEMORY_FRACTION), not this stall; the wait stays for a device slower to reclaim than
    a heartbeat timeout. So a device whose last heartbeat said its memory was nearly full, and whose
    connection is still open (silent, or talking again: its heartbeat can come back before its shard's
    exit is relayed), is given another heartbeat timeout to report that exit. Any other is lost at once:
    a silent loss is noticed within the heartbeat timeout (rules.HEARTBEAT_TIMEOUT_S)."""
    deadline = time.monotonic() + getattr(launcher, "heartbeat_timeout_s", 0.0)
    stalled = launcher.memory_nearly_full(lost.devices)
    while True:
        oom = _queued_oom(job, metrics, messages)
        if oom is not None:
            return oom
        silent = set(launcher.silent_but_connected(stalled))
        connected = [d for d in stalled if d in silent or d not in launcher.lost_devices([d])]
        if not connected or time.monotonic() >= deadline:
            return lost
        time.sleep(POLL_S)


def _queued_oom(job: Job, metrics: RunMetrics, messages: "queue.Queue[ShardMessage]") -> Optional[OutOfMemory]:
    """An OutOfMemory if a queued exit says a device's kernel killed its shard for memory; every other
    message stays queued, in order, for whoever reads next."""
    queued = _drain(messages)
    oom = next((m for m in queued if m.event is None and m.out_of_memory), None)
    for message in queued:
        if message is not oom:
            messages.put(message)
    return None if oom is None else OutOfMemory([job.plan.devices[oom.rank]], metrics.last_step, time.monotonic())


def _follow(job: Job, launcher: Launcher, metrics: RunMetrics, messages: "queue.Queue[ShardMessage]",
            progress: ProgressFn, inject_fault: Optional[FaultFn], last_step: int,
            resumed_corpus: Optional[str] = None, until: str = "done") -> dict[str, dict]:
    """Follow the plan's events until every rank said `until` (done; or held, for a kept plan); returns
    what each device's shard said when it started."""
    world = job.plan.degree
    done: set[int] = set()
    ready_events: dict[str, dict] = {}
    shown_at = 0.0
    heard_at = time.monotonic()
    while len(done) < world:
        try:
            _check_devices(job, launcher, metrics)
        except DeviceLost as lost:
            raise _why_lost(job, launcher, metrics, lost, messages) from None
        try:
            message = messages.get(timeout=POLL_S)
            heard_at = time.monotonic()
        except queue.Empty:
            if time.monotonic() - heard_at > job.stall_timeout_s:
                raise RunError(f"no shard of {job.plan} reported anything for {job.stall_timeout_s:.0f} s") from None
            continue
        device = job.plan.devices[message.rank]
        if message.event is None:
            if message.rank not in done and message.out_of_memory:
                raise OutOfMemory([device], metrics.last_step, time.monotonic())
            if message.rank not in done:
                raise _shard_failed(job, launcher, metrics,
                                    f"the shard on {device} (rank {message.rank}) exited with code "
                                    f"{message.exit_code} before finishing; its log is in {job.run_dir}", messages)
            continue
        event = message.event
        kind = event["event"]
        if kind == "error":
            raise _shard_failed(job, launcher, metrics,
                                f"the shard on {device} (rank {message.rank}) failed: {event['message']}", messages)
        if kind == "ready":
            metrics.add_ready(device, event)
            ready_events[device] = event
            if len(metrics.corpora) == world and len(set(metrics.corpora.values())) > 1:
                raise RunError("the devices disagree on the training text (different corpus fingerprints)")
            if resumed_corpus is not None and event["corpus"] != resumed_corpus:
                # Resuming on other text would go on silently with batches the first part never saw.
                raise UserError(f"checkpoint {job.resume} was trained on other text (corpus {resumed_corpus}) "
                                f"than {device} reads now (corpus {event['corpus']}): resume with the same --data, "
                                "or start a new run without --resume")
        elif kind == "step":
            record = metrics.add_step(device, event, world)
            # At most one progress line a second (and the last step): fast steps must not pay for printing.
            if record is not None and (time.monotonic() - shown_at >= 1.0 or record["step"] == last_step):
                shown_at = time.monotonic()
                progress(f"[{job.plan}] step {record['step']}/{last_step}  "
                         f"loss {record['loss']:.4f}  {record['time_s']:.3f} s  {record['energy_j']:.2f} J  "
                         f"{record['bytes'] / 1e6:.2f} MB")
            if record is not None and record["step"] in job.faults and inject_fault is not None:
                victim = job.faults.pop(record["step"])
                progress(f"[{job.plan}] injecting a fault: killing the worker of {victim} after step {record['step']}")
                inject_fault(victim)
        elif kind == "measurement":
            metrics.measurements.setdefault(device, {})[event["part"]] = event["data"]
            progress(f"measured {event['part']} of {device}")
        elif kind == "checkpoint":
            _add_checkpoint(metrics, event)
            progress(f"[{job.plan}] checkpoint of step {event['step']} saved to {event['path']}")
        elif kind == until:
            done.add(message.rank)
    return ready_events
