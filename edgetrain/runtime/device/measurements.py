"""Measurements the cost model is built from, taken on the live devices by a calibration job.

Every device, in turn (so that devices sharing a machine do not disturb each other), times the forward
and backward pass of each part of the model (embeddings, one Transformer block, output head with the
loss) for several micro-batch sizes and sequence lengths, the AdamW step, the activation memory each
part keeps for the backward pass (counted with saved-tensor hooks), and the CPU time it burns per
second of compute and per second of idling. Then every ordered pair of devices sends a tensor through
torch.distributed (gloo) to measure each link's throughput and latency as training sees it.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn

from edgetrain.core.config import ModelConfig
from edgetrain.runtime.device.cpu import CpuClock
from edgetrain.runtime.training.model import TransformerBlock, build_model, lm_loss

# Five, not three: on a CPU-limited device a run now and then pays for caches the throttling cooled.
REPEATS = 5
# Long against the CFS quota period (100 ms) of a CPU-limited emulated device.
SUSTAINED_S = 2.0
LINK_SIZES = (16 << 10, 128 << 10, 1 << 20)
PING_REPEATS = 10
# Each transfer size is timed this many times and the median kept: one transfer that meets a lost
# segment waits out TCP's 200 ms retransmission timeout, five times a 1 MiB transfer on the testbed,
# and a single timing would price every message of the plan as if it always did.
TRANSFER_REPEATS = 3
EXCHANGE_REPEATS = 3


def _rows_grid(batch_size: int) -> list[int]:
    rows, r = [], 1
    while r < batch_size:
        rows.append(r)
        r *= 2
    return rows + [batch_size]


def _seq_grid(seq_len: int) -> list[int]:
    """Full sequences and the shards sequence parallelism cuts them into (2 to 8 devices)."""
    return sorted({seq_len // k for k in range(1, 9) if seq_len % k == 0 and seq_len // k >= 1}, reverse=True)


def _time_part(run_forward: Callable[[], torch.Tensor]) -> dict:
    """Median forward and backward CPU seconds of this process over REPEATS runs, after one warm-up.
    CPU time, not wall time: a CPU-limited device (a cgroup quota) runs short bursts at full speed and
    is throttled later, so short wall timings would flatter it. `sustained_cpu_rate` turns CPU seconds
    into wall seconds."""
    forward, backward = [], []
    for repeat in range(REPEATS + 1):
        c0 = time.process_time()
        out = run_forward()
        c1 = time.process_time()
        out.backward()
        c2 = time.process_time()
        if repeat:  # the first run warms caches and allocators
            forward.append(c1 - c0)
            backward.append(c2 - c1)
    return {"forward_cpu_s": statistics.median(forward), "backward_cpu_s": statistics.median(backward)}


def _sustained_rates(run_forward: Callable[[], torch.Tensor], clock: CpuClock, seconds: float) -> dict:
    """Train-like compute for `seconds` of wall time: the process's CPU seconds per wall second (its
    sustained speed; below 1 under a CPU quota) and the device's (cgroup) CPU seconds per wall second."""
    c0, d0, t0 = time.process_time(), clock.seconds(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        run_forward().backward()
    wall = time.perf_counter() - t0
    return {"sustained_cpu_rate": (time.process_time() - c0) / wall,
            "device_cpu_per_compute_s": (clock.seconds() - d0) / wall}


def _saved_bytes(run_forward: Callable[[], torch.Tensor]) -> int:
    """Bytes of every tensor autograd keeps for the backward pass of one forward."""
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run_forward()
    out.backward()
    return total


def measure_compute(cfg: ModelConfig, seed: int) -> dict:
    """Time and memory of every model part on this device."""
    torch.manual_seed(seed)
    clock = CpuClock()
    model = build_model(cfg, seed)
    block: TransformerBlock = model.layers["0"]
    results: dict = {"block": [], "embeddings": [], "head": [], "cpu_source": clock.source}
    for rows in _rows_grid(cfg.batch_size):
        for seq in _seq_grid(cfg.seq_len):
            tokens = torch.randint(0, cfg.vocab_size, (rows, seq))
            hidden = torch.randn(rows, seq, cfg.d_model, requires_grad=True)
            positions = torch.arange(seq)

            def embed():
                return (model.tok_embeddings(tokens) + model.pos_embeddings(positions)).sum()

            def run_block():
                return block(hidden, positions).sum()

            def head():
                return lm_loss(model.output(model.norm(hidden)), tokens)

            for name, fn in (("embeddings", embed), ("block", run_block), ("head", head)):
                entry = {"rows": rows, "seq": seq, **_time_part(fn)}
                if seq == cfg.seq_len:
                    entry["activation_bytes"] = _saved_bytes(fn)
                results[name].append(entry)
    hidden = torch.randn(cfg.batch_size, cfg.seq_len, cfg.d_model, requires_grad=True)
    results.update(_sustained_rates(lambda: block(hidden, torch.arange(cfg.seq_len)).sum(), clock, SUSTAINED_S))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    steps = []
    for repeat in range(REPEATS + 1):
        c0 = time.process_time()
        optimizer.step()
        if repeat:
            steps.append(time.process_time() - c0)
    params = sum(p.numel() for p in model.parameters())
    results["optimizer"] = {"params": params, "step_cpu_s": statistics.median(steps),
                            "step_cpu_s_per_param": statistics.median(steps) / params}
    results["param_bytes"] = {name: sum(p.numel() * p.element_size() for p in part.parameters())
                              for name, part in (("embeddings", nn.ModuleList([model.tok_embeddings,
                                                                               model.pos_embeddings])),
                                                 ("block", block),
                                                 ("head", nn.ModuleList([model.norm, model.output])))}
    c0, t0 = clock.seconds(), time.perf_counter()
    time.sleep(1.0)
    results["idle_cpu_per_s"] = (clock.seconds() - c0) / (time.perf_counter() - t0)
    return results


def _exchange_s(peer: int, payloads: dict[int, torch.Tensor]) -> dict[str, float]:
    """Seconds until a message of each size has gone each way between this rank and `peer` at once
    (each sends while it receives, as the fused sends and receives of a 1F1B pipeline do): median of
    EXCHANGE_REPEATS. On the testbed such an exchange of 1 MiB took twice a one-way transfer, while a
    gloo all-reduce used both directions at full speed, so neither time stands for the other."""
    seconds = {}
    for size, payload in payloads.items():
        incoming, times = torch.empty_like(payload), []
        for _ in range(EXCHANGE_REPEATS):
            t0 = time.perf_counter()
            outgoing = dist.isend(payload, peer)
            dist.recv(incoming, peer)
            outgoing.wait()
            times.append(time.perf_counter() - t0)
        seconds[str(size)] = statistics.median(times)
    return seconds


def measure_links(rank: int, world: int) -> dict:
    """Latency and transfer times of every ordered pair (src -> dst), measured with gloo send/recv, for
    several message sizes: short transfers pay TCP's slow start, so one throughput does not fit all.
    Then, once per unordered pair, the time of an exchange (both ways at once) of each size.
    Every rank calls this with the others; each rank returns the measurements of its own sends."""
    ping = torch.zeros(1)
    payloads = {size: torch.zeros(size // 4) for size in LINK_SIZES}
    results, exchanges = {}, {}
    for src in range(world):
        for dst in range(world):
            if src == dst:
                continue
            dist.barrier()
            if rank not in (src, dst):
                continue
            peer = dst if rank == src else src
            rtts = []
            for _ in range(PING_REPEATS):  # one-float round trips
                t0 = time.perf_counter()
                if rank == src:
                    dist.send(ping, peer)
                    dist.recv(ping, peer)
                else:
                    dist.recv(ping, peer)
                    dist.send(ping, peer)
                rtts.append(time.perf_counter() - t0)
            latency = statistics.median(rtts) / 2
            seconds = {}
            for size, payload in payloads.items():
                # The time until the receiver has the whole payload: its confirmation, minus its way back.
                times = []
                for _ in range(TRANSFER_REPEATS):
                    t0 = time.perf_counter()
                    if rank == src:
                        dist.send(payload, peer)
                        dist.recv(ping, peer)
                        times.append(time.perf_counter() - t0 - latency)
                    else:
                        dist.recv(payload, peer)
                        dist.send(ping, peer)
                if rank == src:
                    seconds[size] = statistics.median(times)
            if src < dst:
                exchanges[peer] = _exchange_s(peer, payloads)
            if rank == src:
                largest = max(LINK_SIZES)
                results[f"{src}->{dst}"] = {
                    "latency_s": latency,
                    "transfer_s": {str(size): s for size, s in sorted(seconds.items())},
                    "mbps": largest * 8 / max(seconds[largest] - latency, 1e-9) / 1e6,
                }
    for pair, measured in results.items():
        measured["exchange_s"] = exchanges[int(pair.split("->")[1])]
    return results


def run_calibration(cfg: ModelConfig, seed: int, rank: int, world: int, emit) -> None:
    """Each device measures its compute while the others wait, then all measure the links together."""
    for turn in range(world):
        if turn == rank:
            emit("measurement", rank=rank, part="compute", data=measure_compute(cfg, seed))
        dist.barrier()
    emit("measurement", rank=rank, part="links", data=measure_links(rank, world))
