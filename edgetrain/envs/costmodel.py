"""Predict what a plan costs, from a calibration of the devices (measured by `edgetrain calibrate`): step time, energy and bytes per device,
and whether it fits in memory.

Compute comes from the measured forward/backward times of each model part; communication from an
alpha-beta model (measured latency and throughput of each device pair) of the collectives and
point-to-point sends each parallelism really performs:
- dp: DDP all-reduces all gradients after the backward pass (one bucket for these model sizes),
  gloo's ring: 2(n-1) rounds of 1/n of the gradients, each as slow as the slowest pair in the ring.
- pp: torch's Schedule1F1B over M micro-batches, replayed event by event (edgetrain.envs.pipeline_schedule):
  a stage waits for its sends with the receives it needs next, and in the steady phase an activation
  and a gradient cross each boundary at once (the measured exchange time).
- tp: sharded attention and MLP compute; per block two all-reduces of the activations forward (after
  the row-wise output projections) and four backward (the gradient of the replicated input of each
  column-wise projection: q, k, v and the MLP's first layer, each its own redistribution).
- hybrid: pipeline stages each data-parallel over a group, the hand-written GPipe replayed event by
  event (edgetrain.envs.pipeline_schedule): each member computes its rows of every micro-batch forward,
  then backward, receives what it needs with blocking receives and sends the next stage's members the
  rows they share (a device's sends one after another over its uplink, its receives over its downlink);
  then each group all-reduces its stage's gradients (the stages at once: the slowest sets the pace).
- sp: each device computes its share of the sequence, its queries against the whole sequence's keys
  (the block's time at the shorter sequence, plus the attention scores' part that grows with the
  square of the sequence, fitted per device from the calibration); per block an all-gather of keys and values
  forward and a reduce-scatter of their gradients backward (an all-reduce of the whole gathered tensor
  on gloo); then one all-reduce of all gradients.
On devices under a CPU quota (the emulated ones) every compute time is the measured CPU time at the
device's sustained rate; the step is the critical path, and at least each device's busy time.
Energy is the device power profile applied to the predicted busy time and bytes, as the profile meter
measures it.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Mapping, Optional

from edgetrain.core.calibration import check_calibration_matches
from edgetrain.core.catalog import get_profile
from edgetrain.core.config import ModelConfig, Scenario
from edgetrain.core.feasibility import plan_problems
from edgetrain.core.memory import estimate_memory
from edgetrain.core.plans import HYBRID, Plan
from edgetrain.core.power import profile_energy_j
from edgetrain.core.sizing import (
    count_parameters,
    hybrid_layer_ranges,
    hybrid_microbatches,
    hybrid_rows,
    pipeline_microbatches,
    split_evenly,
    stage_layer_ranges,
)
from edgetrain.envs.pipeline_schedule import BoundaryCosts, GroupMember, StageCosts, gpipe_hybrid_s, one_f_one_b_s

FLOAT_BYTES = 4
# Forward: after attention's and the MLP's row-wise projections; backward: the input gradient of each of
# the four column-wise projections (wq, wk, wv, w1).
TP_ALLREDUCES_PER_BLOCK = 6


@dataclass(frozen=True)
class Prediction:
    plan: str
    step_time_s: float
    energy_j: dict[str, float]
    bytes_sent: dict[str, int]
    bytes_recv: dict[str, int]
    memory_mb: dict[str, float]
    fits: bool
    problems: tuple[str, ...] = ()
    cpu_s: dict[str, float] = field(default_factory=dict)
    """Each device's CPU seconds per step (what its energy is priced from; the runtime reports it per step)."""

    @property
    def total_energy_j(self) -> float:
        return sum(self.energy_j.values())

    def to_dict(self) -> dict:
        return {"plan": self.plan, "step_time_s": self.step_time_s, "energy_j": self.energy_j,
                "total_energy_j": self.total_energy_j, "bytes_sent": self.bytes_sent,
                "bytes_recv": self.bytes_recv, "memory_mb": self.memory_mb, "fits": self.fits,
                "problems": list(self.problems), "cpu_s": self.cpu_s}


@dataclass(frozen=True)
class Corrections:
    """What live measurements taught the model beyond its calibration (edgetrain.envs.recalibration):
    per device, a factor on its compute times (1.2: its forward, backward and optimizer steps take 20%
    longer than calibrated) and a factor on the transfer times of its links (a link between a and b
    takes the geometric mean of a's and b's); per plan kind, a factor on the step time (what the model
    of that kind's schedule gets wrong, whatever the devices). Absent entries keep the calibration."""

    compute: Mapping[str, float] = field(default_factory=dict)
    link: Mapping[str, float] = field(default_factory=dict)
    kind: Mapping[str, float] = field(default_factory=dict)

    def link_factor(self, src: str, dst: str) -> float:
        return math.sqrt(self.link.get(src, 1.0) * self.link.get(dst, 1.0))

    def to_dict(self) -> dict:
        return {"compute": dict(self.compute), "link": dict(self.link), "kind": dict(self.kind)}


@dataclass
class DeviceModel:
    """One device's measured compute, as interpolating tables."""

    name: str
    cores: float
    sustained_cpu_rate: float
    """Shard CPU seconds per wall second under sustained compute: wall = CPU / rate."""
    cpu_per_compute_s: float
    """The device's CPU seconds per wall second while computing (for the energy meter)."""
    idle_cpu_per_s: float
    optimizer_s_per_param: float
    parts: dict[str, dict[int, tuple[list[int], list[float], list[float]]]] = field(default_factory=dict)
    """part -> seq -> (rows, forward_s, backward_s), rows ascending."""
    activation_bytes_per_row: dict[str, float] = field(default_factory=dict)
    _quadratic: dict[tuple[str, float], float] = field(default_factory=dict, repr=False, compare=False)
    """quadratic_s, fitted once per (part, rows)."""

    def time(self, part: str, rows: float, seq: int) -> tuple[float, float]:
        """Forward and backward seconds, linear in rows between measured points (and beyond them)."""
        table = self.parts[part].get(seq)
        if table is None:  # a sequence length never measured: scale the nearest longer one by tokens
            longer = min((s for s in self.parts[part] if s >= seq), default=max(self.parts[part]))
            f, b = self.time(part, rows, longer)
            return f * seq / longer, b * seq / longer
        xs, fs, bs = table
        if len(xs) == 1:
            return fs[0] * rows / xs[0], bs[0] * rows / xs[0]
        i = min(max(bisect.bisect_left(xs, rows), 1), len(xs) - 1)
        w = (rows - xs[i - 1]) / (xs[i] - xs[i - 1])
        return fs[i - 1] + w * (fs[i] - fs[i - 1]), bs[i - 1] + w * (bs[i] - bs[i - 1])

    def quadratic_s(self, part: str, rows: float) -> float:
        """Forward + backward seconds per token pair of `part` at `rows`: the s^2 coefficient of a
        least-squares fit a + b*s + c*s^2 of its measured times over sequence lengths (attention's scores
        grow with the square of the sequence, everything else with it); 0 when it cannot be fitted.
        Fitted once per (part, rows): every sp prediction on this device asks for it."""
        key = (part, rows)
        if key not in self._quadratic:
            seqs = sorted(self.parts[part])
            if len(seqs) < 3:
                self._quadratic[key] = 0.0
            else:
                times = [sum(self.time(part, rows, s)) for s in seqs]
                design = [[1.0, float(s), float(s) ** 2] for s in seqs]
                self._quadratic[key] = max(_least_squares(design, times)[2], 0.0)
        return self._quadratic[key]

    def scaled(self, factor: float) -> "DeviceModel":
        """The same device with every compute time (model parts and optimizer) times `factor`."""
        parts = {part: {seq: (xs, [f * factor for f in fs], [b * factor for b in bs])
                        for seq, (xs, fs, bs) in by_seq.items()} for part, by_seq in self.parts.items()}
        return DeviceModel(self.name, self.cores, self.sustained_cpu_rate, self.cpu_per_compute_s,
                           self.idle_cpu_per_s, self.optimizer_s_per_param * factor, parts,
                           dict(self.activation_bytes_per_row))


class CostModel:
    def __init__(self, calibration: dict, scenario: Scenario):
        check_calibration_matches(calibration, scenario)
        self.calibration = calibration
        self.scenario = scenario
        self.cfg: ModelConfig = scenario.model
        self.devices = {name: self._device(name, data) for name, data in calibration["devices"].items()}
        self.links = {tuple(pair.split("->")): _transfer_table(m) for pair, m in calibration["links"].items()}
        self.exchanges = {tuple(pair.split("->")): _exchange_table(m) for pair, m in calibration["links"].items()
                          if "exchange_s" in m}
        self.params = count_parameters(self.cfg)
        self.corrections = Corrections()
        self.calibrated: CostModel = self
        """The model as calibrated, before any corrections."""
        self._cache: dict[Plan, Prediction] = {}
        self._power_scale: dict[str, float] = {}
        """In a view for a plan with power modes (_in_modes): each lowered device's compute power factor."""

    def corrected(self, corrections: Optional[Corrections]) -> "CostModel":
        """This calibration with `corrections` applied (to the calibration, not on top of this model's
        own corrections); predictions are cached per model, so a corrected model starts a fresh cache."""
        base = self.calibrated
        model = copy.copy(base)
        model.calibrated, model._cache = base, {}
        model.corrections = corrections or Corrections()
        model.devices = {name: device.scaled(model.corrections.compute[name]) if name in model.corrections.compute
                         else device for name, device in base.devices.items()}
        model.links = {pair: (sizes, [s * model.corrections.link_factor(*pair) for s in seconds])
                       if pair[0] in model.corrections.link or pair[1] in model.corrections.link else (sizes, seconds)
                       for pair, (sizes, seconds) in base.links.items()}
        model.exchanges = {pair: (sizes, [s * model.corrections.link_factor(*pair) for s in seconds])
                           for pair, (sizes, seconds) in base.exchanges.items()}
        return model

    @staticmethod
    def _device(name: str, data: dict) -> DeviceModel:
        rate = data["sustained_cpu_rate"]
        device = DeviceModel(name=name, cores=data["cores"], sustained_cpu_rate=rate,
                             cpu_per_compute_s=data["device_cpu_per_compute_s"],
                             idle_cpu_per_s=data["idle_cpu_per_s"],
                             optimizer_s_per_param=data["optimizer"]["step_cpu_s_per_param"] / rate)
        for part in ("embeddings", "block", "head"):
            by_seq: dict[int, tuple] = {}
            for entry in sorted(data[part], key=lambda e: e["rows"]):
                xs, fs, bs = by_seq.setdefault(entry["seq"], ([], [], []))
                xs.append(entry["rows"])
                fs.append(entry["forward_cpu_s"] / rate)
                bs.append(entry["backward_cpu_s"] / rate)
                if "activation_bytes" in entry:
                    device.activation_bytes_per_row[part] = entry["activation_bytes"] / entry["rows"]
            device.parts[part] = by_seq
        return device

    # --- communication -------------------------------------------------------------------------------
    def transfer_s(self, src: str, dst: str, nbytes: float) -> float:
        """Measured seconds for a message of nbytes, linear between the measured sizes and beyond."""
        sizes, seconds = self.links[(src, dst)]
        return _interpolate(sizes, seconds, nbytes)

    def exchange_s(self, a: str, b: str, nbytes: float) -> float:
        """Seconds for a message of nbytes each way between a and b at once: measured (`exchange_s` of
        the calibration), else (a calibration from before it was measured) the slower one-way transfer,
        as if the link carried both directions at full speed."""
        table = self.exchanges.get((a, b)) or self.exchanges.get((b, a))
        if table is None:
            return max(self.transfer_s(a, b, nbytes), self.transfer_s(b, a, nbytes))
        sizes, seconds = table
        return _interpolate(sizes, seconds, nbytes)

    def ring_round_s(self, ring: tuple[str, ...], nbytes: float) -> float:
        """One round of a ring collective: every device sends nbytes to the next, all at once."""
        return max(self.transfer_s(ring[i], ring[(i + 1) % len(ring)], nbytes) for i in range(len(ring)))

    def allreduce_s(self, ring: tuple[str, ...], nbytes: float) -> float:
        n = len(ring)
        return 2 * (n - 1) * self.ring_round_s(ring, nbytes / n)

    def allgather_s(self, ring: tuple[str, ...], chunk_bytes: float) -> float:
        return (len(ring) - 1) * self.ring_round_s(ring, chunk_bytes)

    # --- prediction -----------------------------------------------------------------------------------
    def predict(self, plan: Plan) -> Prediction:
        cached = self._cache.get(plan)
        if cached is None:
            cached = self._cache[plan] = self._predict(plan)
        return cached

    def _fwd_bwd(self, device: str, rows: float, seq: int, layers: int, embed: bool, head: bool) -> float:
        return sum(self._forward_backward(device, rows, seq, layers, embed, head))

    def _forward_backward(self, device: str, rows: float, seq: int, layers: int, embed: bool,
                          head: bool) -> tuple[float, float]:
        """Seconds of the forward and of the backward pass of `layers` blocks (and the embeddings, the
        head with the loss) over `rows` rows of `seq` tokens."""
        model = self.devices[device]
        parts = [("block", layers)] + [("embeddings", 1)] * embed + [("head", 1)] * head
        timed = [(count, model.time(part, rows, seq)) for part, count in parts]
        return sum(c * f for c, (f, _) in timed), sum(c * b for c, (_, b) in timed)

    def _in_modes(self, plan: Plan) -> Prediction:
        """A plan with devices in lower power modes: the same plan, predicted by a view of this model in
        which each such device computes at its mode's speed and draws its mode's share of the compute
        power (the idle power and the radio stay): a step of compute takes 1/speed as long at `power`
        times the power. A mode the device lacks is one of the plan's problems and predicts as the top."""
        view = copy.copy(self)
        view._cache, view.devices, view._power_scale = {}, dict(self.devices), {}
        for device in plan.devices:
            try:
                mode = self.scenario.device(device).power_mode(plan.mode(device))
            except KeyError:
                continue
            if mode is not None:
                view.devices[device] = self.devices[device].scaled(1.0 / mode.speed)
                view._power_scale[device] = mode.power
        top = view._predict(plan.top_modes)
        problems = tuple(plan_problems(plan, self.scenario))
        return dataclasses.replace(top, plan=str(plan), problems=problems, fits=not problems)

    def _predict(self, plan: Plan) -> Prediction:
        if plan.modes:
            return self._in_modes(plan)
        cfg, devices, n = self.cfg, plan.devices, plan.degree
        problems = tuple(plan_problems(plan, self.scenario))
        b, t, d, layers = cfg.batch_size, cfg.seq_len, cfg.d_model, cfg.layers
        grad_bytes = self.params["total"] * FLOAT_BYTES
        compute = {dev: 0.0 for dev in devices}
        sent = {dev: 0.0 for dev in devices}
        recv = {dev: 0.0 for dev in devices}
        optimizer = {dev: self.devices[dev].optimizer_s_per_param * self.params["total"] for dev in devices}
        if plan.kind == "local":
            compute[devices[0]] = self._fwd_bwd(devices[0], b, t, layers, True, True)
            step = compute[devices[0]] + optimizer[devices[0]]
        elif plan.kind == "dp":
            for dev, rows in zip(devices, split_evenly(b, n)):
                compute[dev] = self._fwd_bwd(dev, len(rows), t, layers, True, True)
            comm = self.allreduce_s(devices, grad_bytes)
            for dev in devices:
                sent[dev] = recv[dev] = 2 * (n - 1) / n * grad_bytes
            step = max(compute.values()) + comm + max(optimizer.values())
        elif plan.kind == "pp":
            micro = pipeline_microbatches(cfg, n) or n
            rows = b / micro
            act_bytes = rows * t * d * FLOAT_BYTES
            stages, boundaries = [], []
            for s, (dev, owned) in enumerate(zip(devices, stage_layer_ranges(layers, n))):
                forward, backward = self._forward_backward(dev, rows, t, len(owned), s == 0, s == n - 1)
                stages.append(StageCosts(forward, backward))
                optimizer[dev] = self.devices[dev].optimizer_s_per_param * (
                    len(owned) * self.params["block"] + (self.params["embeddings"] if s == 0 else 0)
                    + (self.params["head"] if s == n - 1 else 0))
                if s < n - 1:  # activations forward, their gradients come back
                    nxt = devices[s + 1]
                    boundaries.append(BoundaryCosts(self.transfer_s(dev, nxt, act_bytes),
                                                    self.transfer_s(nxt, dev, act_bytes),
                                                    self.exchange_s(dev, nxt, act_bytes)))
                    sent[dev] += micro * act_bytes
                    recv[dev] += micro * act_bytes
                    sent[nxt] += micro * act_bytes
                    recv[nxt] += micro * act_bytes
                compute[dev] = micro * (forward + backward)
            step = one_f_one_b_s(stages, boundaries, micro) + max(optimizer.values())
        elif plan.kind == HYBRID:
            step = self._hybrid_step(plan, compute, optimizer, sent, recv)
        elif plan.kind == "tp":
            act_bytes = b * t * d * FLOAT_BYTES
            for dev in devices:
                model = self.devices[dev]
                block = sum(model.time("block", b, t)) / n
                compute[dev] = layers * block + sum(model.time("embeddings", b, t)) + sum(model.time("head", b, t))
                sent[dev] = recv[dev] = TP_ALLREDUCES_PER_BLOCK * layers * 2 * (n - 1) / n * act_bytes
                optimizer[dev] = model.optimizer_s_per_param * (self.params["total"] - layers * self.params["block"] * (1 - 1 / n))
            comm = TP_ALLREDUCES_PER_BLOCK * layers * self.allreduce_s(devices, act_bytes)
            step = max(compute.values()) + comm + max(optimizer.values())
        else:  # sp
            chunk = t // n
            kv_chunk_bytes = b * chunk * d * FLOAT_BYTES
            for dev in devices:
                # Its chunk's queries attend to all t keys: the scores cost chunk*t, not chunk*chunk, pairs.
                wider = layers * self.devices[dev].quadratic_s("block", b) * chunk * (t - chunk)
                compute[dev] = self._fwd_bwd(dev, b, chunk, layers, True, True) + wider
                # k and v: gathered forward; their gradients reduce-scattered backward, which gloo does
                # as an all-reduce of the whole gathered tensor.
                forward = 2 * layers * (n - 1) * kv_chunk_bytes
                backward = 2 * layers * 2 * (n - 1) * kv_chunk_bytes
                sent[dev] = recv[dev] = forward + backward + 2 * (n - 1) / n * grad_bytes
            comm = (2 * layers * self.allgather_s(devices, kv_chunk_bytes)
                    + 2 * layers * self.allreduce_s(devices, n * kv_chunk_bytes)
                    + self.allreduce_s(devices, grad_bytes))
            step = max(compute.values()) + comm + max(optimizer.values())
        step = self._at_least_busy(step, {dev: compute[dev] + optimizer[dev] for dev in devices})
        step *= self.corrections.kind.get(plan.kind, 1.0)
        energy, cpu = {}, {}
        for dev in devices:
            model, power = self.devices[dev], get_profile(self.scenario.device(dev).profile)
            busy_cpu = (compute[dev] + optimizer[dev]) * model.cpu_per_compute_s
            idle_cpu = max(step - compute[dev] - optimizer[dev], 0.0) * model.idle_cpu_per_s
            cpu[dev] = busy_cpu + idle_cpu
            idle_w, active_w = power.idle_power_w.value, power.active_power_w.value
            energy[dev] = profile_energy_j(
                idle_w=idle_w, active_w=idle_w + (active_w - idle_w) * self._power_scale.get(dev, 1.0),
                tx_j_per_byte=power.radio_tx_j_per_byte.value, rx_j_per_byte=power.radio_rx_j_per_byte.value,
                cores=model.cores, wall_s=step, cpu_s=cpu[dev], bytes_sent=sent[dev], bytes_recv=recv[dev])
        memory = self._memory(plan)
        fits = not problems
        return Prediction(str(plan), step, energy, {k: int(v) for k, v in sent.items()},
                          {k: int(v) for k, v in recv.items()}, memory, fits, problems, cpu)

    def _hybrid_step(self, plan: Plan, compute, optimizer, sent, recv) -> float:
        """Fills each member's compute, optimizer and bytes; returns the step's critical path."""
        cfg, (b, t, d) = self.cfg, (self.cfg.batch_size, self.cfg.seq_len, self.cfg.d_model)
        ranges, stages = hybrid_layer_ranges(plan, cfg.layers), plan.stages
        micro = hybrid_microbatches(plan, b)
        rows = [[hybrid_rows(plan, b, s, j) for j in range(len(group))] for s, group in enumerate(stages)]
        members, handoffs, reduce_s = [], {}, 0.0
        for s, group in enumerate(stages):
            first, last = s == 0, s == len(stages) - 1
            params = (len(ranges[s]) * self.params["block"] + (self.params["embeddings"] if first else 0)
                      + (self.params["head"] if last else 0))
            timed = []
            for dev, mine in zip(group, rows[s]):
                passes = [self._forward_backward(dev, len(r), t, len(ranges[s]), first, last) for r in mine]
                timed.append(GroupMember(dev, tuple(f for f, _ in passes), tuple(b for _, b in passes)))
                compute[dev] = sum(f + b for f, b in passes)
                optimizer[dev] = self.devices[dev].optimizer_s_per_param * params
            members.append(timed)
            if not last:  # activations forward, their gradients back, between members that share rows
                for j, (src, mine) in enumerate(zip(group, rows[s])):
                    for k, (dst, theirs) in enumerate(zip(stages[s + 1], rows[s + 1])):
                        for m in range(micro):
                            shared = len(range(max(mine[m].start, theirs[m].start), min(mine[m].stop, theirs[m].stop)))
                            if shared <= 0:
                                continue
                            nbytes = shared * t * d * FLOAT_BYTES
                            sent[src] += nbytes
                            recv[dst] += nbytes
                            sent[dst] += nbytes
                            recv[src] += nbytes
                            handoffs[(m, s, j, k)] = (self.transfer_s(src, dst, nbytes), self.transfer_s(dst, src, nbytes))
            if len(group) > 1:
                grad_bytes = params * FLOAT_BYTES
                reduce_s = max(reduce_s, self.allreduce_s(group, grad_bytes))
                for dev in group:
                    sent[dev] += 2 * (len(group) - 1) / len(group) * grad_bytes
                    recv[dev] += 2 * (len(group) - 1) / len(group) * grad_bytes
        return gpipe_hybrid_s(members, handoffs) + reduce_s + max(optimizer.values())

    @staticmethod
    def _at_least_busy(path_s: float, busy_s: dict[str, float]) -> float:
        """The step: the schedule's critical path, and at least each device's own compute + optimizer
        time. (Under the testbed's former 100 ms CPU quota period a device that waited for the network
        saved up quota and computed the next burst at full core speed, which this model had to credit;
        under the 2 ms period each device holds its rate at every time scale, and the path is the step.)"""
        return max([path_s, *busy_s.values()])

    def _memory(self, plan: Plan) -> dict[str, float]:
        """MiB per device, from the one memory model that also decides feasibility."""
        return {estimate.device: estimate.need_mb for estimate in estimate_memory(plan, self.scenario)}


def _least_squares(design: list[list[float]], values: list[float]) -> list[float]:
    """The coefficients x minimising |design x - values|^2 (normal equations; a handful of points)."""
    import numpy as np
    solution, *_ = np.linalg.lstsq(np.asarray(design), np.asarray(values), rcond=None)
    return [float(x) for x in solution]


def _interpolate(sizes: list[float], seconds: list[float], nbytes: float) -> float:
    """Seconds for nbytes, linear between the measured sizes and beyond them."""
    i = min(max(bisect.bisect_left(sizes, nbytes), 1), len(sizes) - 1)
    slope = (seconds[i] - seconds[i - 1]) / (sizes[i] - sizes[i - 1])
    return max(seconds[i - 1] + slope * (nbytes - sizes[i - 1]), 0.0)


def _exchange_table(measured: dict) -> tuple[list[float], list[float]]:
    """(sizes, seconds) of a measured exchange, from (0 bytes, one latency)."""
    sizes = [0.0] + [float(size) for size in measured["exchange_s"]]
    return sizes, [measured["latency_s"]] + list(measured["exchange_s"].values())


def _transfer_table(measured: dict) -> tuple[list[float], list[float]]:
    """(sizes, seconds) from a measured link, with (0 bytes, one latency) as the first point."""
    sizes = [0.0] + [float(size) for size in measured["transfer_s"]]
    seconds = [measured["latency_s"]] + list(measured["transfer_s"].values())
    return sizes, seconds
