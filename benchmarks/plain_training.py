"""The baseline of benchmarks/runtime_overhead.py: the same model and batches trained with the same
PyTorch primitive (DDP, or pipelining with 1F1B) and nothing else: no metering, no events, no checkpoints.

    python benchmarks/plain_training.py {dp|pp} WORLD STEPS PORT   (spawns WORLD processes; prints JSON)
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
    if kind == "dp":
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
        if kind == "dp":
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
