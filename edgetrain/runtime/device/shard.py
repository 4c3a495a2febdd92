"""A shard process: one device's part of one plan, joined to the others by torch.distributed (gloo).

Started by a launcher (a subprocess on this machine, or the worker daemon on a device) with a JSON
ShardSpec per line on stdin; reports JSON events on stdout (runtime/spec.py); logs on stderr. Heavy
imports happen before the spec is read, so a launcher can start a shard ahead of time and have it warm
(torch imported) when a plan arrives: importing torch takes seconds on a small device. That includes
`torch._dynamo`, which DistributedDataParallel and DTensor import on first use: left to the first plan,
it was 2.7 s of a recovery's 3.6 s on an emulated device (measured on the testbed). After a plan,
the process waits for the next spec (a worker reuses it) until stdin closes.

    python -m edgetrain.runtime.device.shard < spec.json
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from datetime import timedelta
from typing import Optional

import torch
import torch._dynamo  # noqa: F401  (imported ahead of any plan: the docstring says why)
import torch.distributed as dist

from edgetrain.core.config import ModelConfig
from edgetrain.core.plans import Plan
from edgetrain.runtime.device.cpu import CpuClock
from edgetrain.runtime.device.energy import PowerProfile, Usage, select_meter
from edgetrain.runtime.device.measurements import run_calibration
from edgetrain.runtime.device.netstats import TrafficCounter
from edgetrain.runtime.training.checkpoint import load_checkpoint, save_checkpoint
from edgetrain.runtime.training.data import batch_for_step, load_corpus
from edgetrain.runtime.training.parallel import build_trainer
from edgetrain.runtime.wire.spec import ShardSpec, encode_event


def emit(kind: str, **payload) -> None:
    print(encode_event(kind, **payload), flush=True)


_corpora: dict = {}


def corpus_for(data):
    """The training text, read once per process: a reused shard does not read 8 MiB again per plan."""
    if data not in _corpora:
        _corpora[data] = load_corpus(data)
    return _corpora[data]


def run_shard(spec: ShardSpec) -> None:
    started = time.perf_counter()
    if spec.socket_ifname:
        os.environ["GLOO_SOCKET_IFNAME"] = spec.socket_ifname
    torch.set_num_threads(1)  # one thread per device process: the emulated device's own CPU
    cfg = ModelConfig(**spec.model)
    # Where a plan's start goes (the ready event carries it): a recovery or a switch waits for all of it.
    parts: dict[str, float] = {}
    lapped = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal lapped
        now = time.perf_counter()
        parts[name] = now - lapped
        lapped = now

    corpus = corpus_for(spec.data)
    lap("corpus_s")
    checkpoint = load_checkpoint(spec.resume) if spec.resume else None
    start_step = checkpoint["step"] if checkpoint else 0
    lap("checkpoint_load_s")
    dist.init_process_group("gloo", init_method=f"tcp://{spec.master_addr}:{spec.master_port}",
                            rank=spec.rank, world_size=spec.world_size, timeout=timedelta(seconds=spec.timeout_s))
    lap("rendezvous_s")
    meter = None
    try:
        if spec.mode == "calibrate":
            run_calibration(cfg, spec.seed, spec.rank, spec.world_size, emit)
            emit("done", rank=spec.rank)
            return
        trainer = build_trainer(spec.kind, cfg, spec.seed, spec.rank, spec.world_size, checkpoint,
                                plan=Plan.parse(spec.layout) if spec.layout else None)
        del checkpoint
        lap("build_s")
        profile = PowerProfile.from_catalog(spec.profile, spec.cores).in_mode(spec.power_speed, spec.power_scale)
        meter = select_meter(profile, spec.hardware_meter)
        traffic = TrafficCounter()
        cpu_clock = CpuClock()
        lap("meter_s")
        emit("ready", rank=spec.rank, start_step=start_step, corpus=corpus.fingerprint, meter=meter.name,
             cpu_source=cpu_clock.source, startup_s=time.perf_counter() - started, startup_parts=parts)
        last_step = start_step + spec.steps
        mark = time.perf_counter()
        step = start_step
        while True:
            step = _train_until(spec, cfg, corpus, trainer, meter, traffic, cpu_clock, step, last_step, mark)
            if not spec.hold:
                break
            # A held plan (it said `held` before its last checkpoint, in _train_until): the same process
            # group, model and optimizer go on when the coordinator keeps the plan at its next decision
            # (no restart, no reload); a release ends it as usual.
            more = _next_segment()
            if more is None:
                break
            last_step += more
            mark = time.perf_counter()
        emit("done", rank=spec.rank)
    finally:
        if meter is not None:
            meter.close()
        dist.destroy_process_group()


def _next_segment() -> Optional[int]:
    """Steps to go on for, from the worker: {"continue": N}; None on {"release": true} or a closed stdin."""
    line = sys.stdin.readline()
    if not line.strip():
        return None
    order = json.loads(line)
    steps = order.get("continue") if isinstance(order, dict) else None
    return steps if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0 else None


def _train_until(spec, cfg, corpus, trainer, meter, traffic, cpu_clock, step: int, last_step: int,
                 mark: float) -> int:
    """Train steps step+1..last_step (checkpointing as the spec says, and after the last); returns the last."""
    for step in range(step + 1, last_step + 1):
        inputs, targets = batch_for_step(corpus, spec.seed, step - 1, cfg.batch_size, cfg.seq_len)
        wall0, cpu0 = time.perf_counter(), cpu_clock.seconds()
        result = trainer.train_step(inputs, targets)
        wall, cpu = time.perf_counter() - wall0, cpu_clock.seconds() - cpu0
        sent, recv = traffic.delta()
        energy = meter.measure(Usage(wall, cpu, sent, recv))
        # interval_s: the whole loop iteration, our bookkeeping included (what the overhead benchmark compares).
        now = time.perf_counter()
        emit("step", rank=spec.rank, step=step, loss=result.loss, loss_weight=result.loss_weight,
             time_s=wall, cpu_s=cpu, bytes_sent=sent, bytes_recv=recv, energy_j=energy, interval_s=now - mark)
        mark = now
        if spec.hold and step == last_step:
            # Before the checkpoint: the coordinator makes its next decision while this one is written
            # and travels (a kept plan needs none of it; a release waits for the worker, whose last events
            # come after the file).
            emit("held", rank=spec.rank, step=step)
        due = spec.checkpoint_every and step % spec.checkpoint_every == 0
        if spec.checkpoint_out and (due or step == last_step):
            saved = time.perf_counter()
            state = trainer.full_state()
            if state is not None:
                save_checkpoint(spec.checkpoint_out, step=step, seed=spec.seed, model_cfg=cfg,
                                corpus=corpus.fingerprint, model_state=state[0], optim_state=state[1])
                emit("checkpoint", rank=spec.rank, step=step, path=spec.checkpoint_out,
                     time_s=time.perf_counter() - saved)
            traffic.delta()  # checkpoint traffic is not a training step's
            mark = time.perf_counter()
    return last_step


def main() -> int:
    """Run one spec per line of stdin until it closes. A one-shot launcher writes one spec and closes
    stdin; a worker daemon keeps it open and hands this warm process (torch imported, corpus read) its
    next plan, which then starts in a fraction of a second. A process that failed is not reused."""
    rank = -1
    try:
        if os.environ.get("EDGETRAIN_PRELOAD_CORPUS"):  # a worker's warm process: the built-in text read ahead too
            corpus_for(None)
            emit("warm", rank=rank)  # imports done: it costs its device no more CPU until a plan comes
        while True:
            line = sys.stdin.readline()
            if not line.strip():
                return 0
            spec = ShardSpec.from_json(line)
            rank = spec.rank
            run_shard(spec)
            emit("idle", rank=rank)  # its process group is gone: ready for the next spec
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # report to the coordinator in one line; details on stderr
        traceback.print_exc(file=sys.stderr)
        emit("error", rank=rank, message=f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
        return 1


if __name__ == "__main__":
    sys.exit(main())
