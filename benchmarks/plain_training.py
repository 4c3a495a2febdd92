"""The baseline of benchmarks/runtime_overhead.py: the same model and batches trained with the same
PyTorch primitive (DDP, or pipelining with 1F1B) and nothing else: no metering, no events, no checkpoints.
`hybrid` (WORLD 4): two pipeline stages of two blocks, each data-parallel over two ranks, as
`hybrid:a+b=2/c+d=2@4` is: member j of stage 0 feeds member j of stage 1 (torch.distributed.pipelining's
GPipe over the pair, 4 micro-batches of each member's half of the batch), then each stage averages its
gradients in one flat all-reduce over its pair.

    python benchmarks/plain_training.py {dp|pp|hybrid} WORLD STEPS PORT   (spawns WORLD processes; prints JSON)
"""

import json
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from edgetrain.core.scenario import load_scenario
from edgetrain.core.sizing import default_microbatches, stage_layer_ranges
from edgetrain.runtime.training.data import batch_for_step, load_corpus
from edgetrain.runtime.training.model import build_model, lm_loss


def worker(rank, kind, world, steps, port, results):
    torch.set_num_threads(1)
    cfg = load_scenario().model
    corpus = load_corpus()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    model = build_model(cfg, 0)
    stage_group = None
    if kind == "hybrid":
        model, schedule, stage_group, rows = hybrid_stage(model, cfg, rank)
    elif kind == "dp":
        model = torch.nn.parallel.DistributedDataParallel(model)
        rows = slice(rank * cfg.batch_size // world, (rank + 1) * cfg.batch_size // world)
    else:
        from torch.distributed.pipelining import PipelineStage, Schedule1F1B
        owned = stage_layer_ranges(cfg.layers, world)[rank]
        for index in list(model.layers.keys()):
            if int(index) not in owned:
                del model.layers[index]
        if rank != 0:
            model.tok_embeddings = model.pos_embeddings = None
        if rank != world - 1:
            model.norm = model.output = None
        micro = default_microbatches(cfg.batch_size, world)
        mb = cfg.batch_size // micro
        hidden = torch.empty(mb, cfg.seq_len, cfg.d_model, device="meta", requires_grad=True)
        stage = PipelineStage(
            model, rank, world, torch.device("cpu"),
            input_args=torch.empty(mb, cfg.seq_len, dtype=torch.long, device="meta") if rank == 0 else hidden,
            output_args=torch.empty(mb, cfg.seq_len, 256, device="meta", requires_grad=True)
            if rank == world - 1 else hidden)
        schedule = Schedule1F1B(stage, n_microbatches=micro, loss_fn=lm_loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    stamps = [time.perf_counter()]
    for step in range(steps):
        inputs, targets = batch_for_step(corpus, 0, step, cfg.batch_size, cfg.seq_len)
        optimizer.zero_grad(set_to_none=True)
        if kind == "hybrid":
            if rank < 2:
                schedule.step(inputs[rows])
            else:
                schedule.step(target=targets[rows], losses=[])
            grads = [p.grad for p in model.parameters()]
            flat = torch._utils._flatten_dense_tensors(grads)
            dist.all_reduce(flat, group=stage_group)
            flat /= 2
            for grad, reduced in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
                grad.copy_(reduced)
        elif kind == "dp":
            lm_loss(model(inputs[rows]), targets[rows]).backward()
        elif rank == 0:
            schedule.step(inputs)
        elif rank == world - 1:
            schedule.step(target=targets, losses=[])
        else:
            schedule.step()
        optimizer.step()
        stamps.append(time.perf_counter())
    results.put((rank, [b - a for a, b in zip(stamps, stamps[1:])]))
    dist.destroy_process_group()


def hybrid_stage(model, cfg, rank):
    """Rank r: stage r // 2 (blocks 0-1 with the embeddings, or 2-3 with the head), member r % 2 (half
    of the batch's rows); the pipeline of member j is ranks (j, 2 + j)."""
    from torch.distributed.pipelining import PipelineStage, ScheduleGPipe
    stage, member = divmod(rank, 2)
    stage_groups = [dist.new_group([0, 1]), dist.new_group([2, 3])]  # every rank creates every group
    pipe_groups = [dist.new_group([0, 2]), dist.new_group([1, 3])]
    owned = range(0, 2) if stage == 0 else range(2, cfg.layers)
    for index in list(model.layers.keys()):
        if int(index) not in owned:
            del model.layers[index]
    if stage == 1:
        model.tok_embeddings = model.pos_embeddings = None
    else:
        model.norm = model.output = None
    micro, half = 4, cfg.batch_size // 2
    mb = half // micro
    hidden = torch.empty(mb, cfg.seq_len, cfg.d_model, device="meta", requires_grad=True)
    pipe = PipelineStage(
        model, stage, 2, torch.device("cpu"),
        input_args=torch.empty(mb, cfg.seq_len, dtype=torch.long, device="meta") if stage == 0 else hidden,
        output_args=torch.empty(mb, cfg.seq_len, 256, device="meta", requires_grad=True) if stage == 1 else hidden,
        group=pipe_groups[member])
    schedule = ScheduleGPipe(pipe, n_microbatches=micro, loss_fn=lm_loss)
    return model, schedule, stage_groups[stage], slice(member * half, (member + 1) * half)


def main():
    kind, world, steps, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    results = mp.get_context("spawn").SimpleQueue()
    mp.start_processes(worker, args=(kind, world, steps, port, results), nprocs=world, start_method="spawn")
    per_rank = dict(results.get() for _ in range(world))
    # A step is over when its slowest rank is.
    intervals = [max(per_rank[r][i] for r in per_rank) for i in range(steps)]
    print(json.dumps({"intervals_s": intervals, "median_s": statistics.median(intervals[1:])}))


if __name__ == "__main__":
    main()
