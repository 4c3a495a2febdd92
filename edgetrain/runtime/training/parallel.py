"""One function per plan kind turns the one-device model into this shard's part of the training step.

Every trainer exposes the same three things: `train_step(inputs, targets)` on the GLOBAL batch (each
trainer takes its own slice), `full_state()` which gathers the plan-independent model and optimizer
state on rank 0 (a collective: every rank calls it), and construction from such a state, so that a
checkpoint taken on one plan resumes on any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from edgetrain.core.config import ModelConfig
from edgetrain.core.plans import HYBRID, Plan
from edgetrain.core.sizing import (
    hybrid_layer_ranges,
    hybrid_rows,
    pipeline_microbatches,
    split_evenly,
    stage_layer_ranges,
    stage_of_key,
)
from edgetrain.runtime.training.model import Transformer, build_model, lm_loss

# AdamW state per parameter, in the order they travel when a pipeline stage ships its state to rank 0.
_ADAM_KEYS = ("step", "exp_avg", "exp_avg_sq")


@dataclass(frozen=True)
class StepResult:
    """What one shard knows after a step: its part of the global loss, if any."""

    loss: Optional[float]
    """The mean loss over the tokens this shard scored (None when it scored none)."""
    loss_weight: float
    """The share of the global batch's tokens behind `loss`; the global loss is sum(loss * weight)."""


def make_optimizer(model: nn.Module, cfg: ModelConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr)


class ShardTrainer:
    """Base: one optimizer over this shard's parameters; subclasses define the step and the state."""

    def __init__(self, model: nn.Module, cfg: ModelConfig, rank: int, world_size: int):
        self.model = model
        self.cfg = cfg
        self.rank = rank
        self.world_size = world_size
        self.optimizer = make_optimizer(model, cfg)

    def train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepResult:
        raise NotImplementedError

    def load_optimizer_state(self, optim_state: dict) -> None:
        set_optimizer_state_dict(self.model, self.optimizer, optim_state,
                                 options=StateDictOptions(full_state_dict=True))

    def full_state(self) -> Optional[tuple[dict, dict]]:
        """(model_state, optimizer_state) keyed by the one-device model's names, on rank 0; None elsewhere."""
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state = get_model_state_dict(self.model, options=options)
        optim_state = get_optimizer_state_dict(self.model, self.optimizer, options=options)
        if self.rank != 0:
            return None
        return dict(model_state), optim_state


class LocalTrainer(ShardTrainer):
    def train_step(self, inputs, targets):
        self.optimizer.zero_grad(set_to_none=True)
        loss = lm_loss(self.model(inputs), targets)
        loss.backward()
        self.optimizer.step()
        return StepResult(loss.item(), 1.0)


class DataParallelTrainer(ShardTrainer):
    """DistributedDataParallel: each rank trains on its slice of the batch rows. Slices may differ by a
    row (batch_size need not divide evenly); each rank's loss is scaled by its share so that DDP's
    average of gradients is the gradient of the mean loss over the whole batch."""

    def __init__(self, model, cfg, rank, world_size):
        from torch.nn.parallel import DistributedDataParallel
        super().__init__(DistributedDataParallel(model), cfg, rank, world_size)
        rows = split_evenly(cfg.batch_size, world_size)[rank]
        self.rows = slice(rows.start, rows.stop)
        self.share = len(rows) / cfg.batch_size

    def train_step(self, inputs, targets):
        self.optimizer.zero_grad(set_to_none=True)
        loss = lm_loss(self.model(inputs[self.rows]), targets[self.rows])
        # DDP averages gradients over ranks (divides by world_size); undo that and weight by share.
        (loss * (self.share * self.world_size)).backward()
        self.optimizer.step()
        return StepResult(loss.item(), self.share)


class TensorParallelTrainer(ShardTrainer):
    """DTensor tensor parallelism (Megatron style): attention heads and MLP columns split across ranks;
    embeddings, norms and the output head replicated. Every rank sees the whole batch."""

    def __init__(self, model, cfg, rank, world_size):
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module
        mesh = init_device_mesh("cpu", (world_size,))
        plan = {
            "attention.wq": ColwiseParallel(),
            "attention.wk": ColwiseParallel(),
            "attention.wv": ColwiseParallel(),
            "attention.wo": RowwiseParallel(),
            "feed_forward.w1": ColwiseParallel(),
            "feed_forward.w2": RowwiseParallel(),
        }
        for block in model.layers.values():
            parallelize_module(block, mesh, plan)
        super().__init__(model, cfg, rank, world_size)

    def train_step(self, inputs, targets):
        self.optimizer.zero_grad(set_to_none=True)
        loss = lm_loss(self.model(inputs), targets)
        loss.backward()
        self.optimizer.step()
        # Every rank computes the same full loss; one report is enough.
        return StepResult(loss.item() if self.rank == 0 else None, 1.0 if self.rank == 0 else 0.0)


class SequenceParallelTrainer(ShardTrainer):
    """The sequence dimension is split across ranks. Attention sees the full sequence: keys and values
    are all-gathered with an autograd-aware collective (its backward reduce-scatters their gradients);
    the replicated weights' gradients are averaged in one flat all-reduce after the backward pass."""

    def __init__(self, model: Transformer, cfg, rank, world_size):
        import torch.distributed._functional_collectives as funcol
        self.chunk = cfg.seq_len // world_size
        model.position_offset = rank * self.chunk
        group = dist.group.WORLD
        key_positions = torch.arange(cfg.seq_len)

        def gather_keys_values(k, v, positions):
            k = funcol.all_gather_single_autograd(k.contiguous(), 2, group)
            v = funcol.all_gather_single_autograd(v.contiguous(), 2, group)
            return k, v, key_positions

        for block in model.layers.values():
            block.attention.kv_gather = gather_keys_values
        super().__init__(model, cfg, rank, world_size)

    def train_step(self, inputs, targets):
        cols = slice(self.rank * self.chunk, (self.rank + 1) * self.chunk)
        self.optimizer.zero_grad(set_to_none=True)
        loss = lm_loss(self.model(inputs[:, cols]), targets[:, cols])
        loss.backward()
        grads = [p.grad for p in self.model.parameters()]
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= self.world_size
        for grad, reduced in zip(grads, _unflatten_dense_tensors(flat, grads)):
            grad.copy_(reduced)
        self.optimizer.step()
        return StepResult(loss.item(), 1.0 / self.world_size)


def _keep_stage(model: Transformer, owned: range, first: bool, last: bool) -> None:
    """Cut the one-device model down to one pipeline stage: its blocks, the embeddings on the first
    stage, the norm and output head on the last (model.forward skips the parts set to None)."""
    for index in list(model.layers.keys()):
        if int(index) not in owned:
            del model.layers[index]
    if not first:
        model.tok_embeddings = None
        model.pos_embeddings = None
    if not last:
        model.norm = None
        model.output = None


class StagedState:
    """Checkpoint state of a model cut into pipeline stages. The first rank of each stage (its leader:
    the members of a stage hold the same parameters) ships the stage's parameters and AdamW state to
    rank 0 in one flat point-to-point message; rank 0 knows every stage's names and shapes from the
    one-device model, so no metadata travels. Set by the trainer: full_shapes, layer_ranges, stage,
    stage_leaders."""

    full_shapes: dict
    layer_ranges: list[range]
    stage: int
    stage_leaders: list[int]

    def load_optimizer_state(self, optim_state: dict) -> None:
        owned = {k for k in self.model.state_dict()}
        state = {k: v for k, v in optim_state["state"].items() if k in owned}
        groups = [dict(g, params=[p for p in g["params"] if p in owned]) for g in optim_state["param_groups"]]
        super().load_optimizer_state({"state": state, "param_groups": groups})

    def full_state(self):
        model_state = dict(self.model.state_dict())
        optim_state = get_optimizer_state_dict(self.model, self.optimizer,
                                               options=StateDictOptions(full_state_dict=True))
        has_optim = bool(optim_state["state"])
        if self.rank != 0:
            if self.rank == self.stage_leaders[self.stage]:
                tensors = self._stage_tensors(self.stage, model_state, optim_state, has_optim)
                dist.send(_flatten_dense_tensors(tensors), 0)
            return None
        for stage in range(1, len(self.layer_ranges)):
            names = self._stage_keys(stage)
            templates = [torch.empty(self.full_shapes[k]) for k in names]
            if has_optim:
                templates += [torch.empty(() if field == "step" else self.full_shapes[k])
                              for k in names for field in _ADAM_KEYS]
            flat = torch.empty(sum(t.numel() for t in templates))
            dist.recv(flat, self.stage_leaders[stage])
            tensors = iter(_unflatten_dense_tensors(flat, templates))
            for key in names:
                model_state[key] = next(tensors).clone()
            if has_optim:
                for key in names:
                    optim_state["state"][key] = {field: next(tensors).clone() for field in _ADAM_KEYS}
        order = list(self.full_shapes)
        for group in optim_state["param_groups"]:
            group["params"] = [k for k in order if k in optim_state["state"] or not has_optim]
        return {k: model_state[k] for k in order}, optim_state

    def _stage_keys(self, stage: int) -> list[str]:
        # Every state-dict entry of this model is a trainable parameter (no buffers), so these names
        # are also the keys of the stage's AdamW state.
        return [k for k in self.full_shapes if stage_of_key(k, self.layer_ranges) == stage]

    def _stage_tensors(self, stage, model_state, optim_state, has_optim) -> list[torch.Tensor]:
        names = self._stage_keys(stage)
        tensors = [model_state[k].detach() for k in names]
        if has_optim:
            tensors += [optim_state["state"][k][field].detach().reshape(()) if field == "step"
                        else optim_state["state"][k][field].detach()
                        for k in names for field in _ADAM_KEYS]
        return [t.float() for t in tensors]


class PipelineParallelTrainer(StagedState, ShardTrainer):
    """torch.distributed.pipelining: each rank holds a contiguous run of blocks (the first also the
    embeddings, the last also the norm and output head) and runs the 1F1B schedule over micro-batches."""

    def __init__(self, model: Transformer, cfg, rank, world_size):
        from torch.distributed.pipelining import PipelineStage, Schedule1F1B
        self.full_shapes = {k: v.shape for k, v in model.state_dict().items()}
        self.layer_ranges = stage_layer_ranges(cfg.layers, world_size)
        self.stage, self.stage_leaders = rank, list(range(world_size))
        _keep_stage(model, self.layer_ranges[rank], rank == 0, rank == world_size - 1)
        self.microbatches = pipeline_microbatches(cfg, world_size)
        rows = cfg.batch_size // self.microbatches
        # requires_grad on activations: it tells each stage that gradients flow back across the boundary.
        hidden = torch.empty(rows, cfg.seq_len, cfg.d_model, device="meta", requires_grad=True)
        stage_input = torch.empty(rows, cfg.seq_len, dtype=torch.long, device="meta") if rank == 0 else hidden
        stage_output = (torch.empty(rows, cfg.seq_len, cfg.vocab_size, device="meta", requires_grad=True)
                        if rank == world_size - 1 else hidden)
        # Static shapes: no run-time shape inference, which would exchange pickled metadata.
        stage = PipelineStage(model, rank, world_size, torch.device("cpu"),
                              input_args=stage_input, output_args=stage_output)
        self.schedule = Schedule1F1B(stage, n_microbatches=self.microbatches, loss_fn=lm_loss)
        super().__init__(model, cfg, rank, world_size)

    @property
    def is_last(self) -> bool:
        return self.rank == self.world_size - 1

    def train_step(self, inputs, targets):
        self.optimizer.zero_grad(set_to_none=True)
        losses: list[torch.Tensor] = []
        if self.rank == 0:
            self.schedule.step(inputs)
        elif self.is_last:
            self.schedule.step(target=targets, losses=losses)
        else:
            self.schedule.step()
        self.optimizer.step()
        if self.is_last:
            # Equal micro-batches: the mean of their mean losses is the batch's mean loss.
            return StepResult(torch.stack(losses).mean().item(), 1.0)
        return StepResult(None, 0.0)


class HybridTrainer(StagedState, ShardTrainer):
    """A pipeline whose stages are each data-parallel over a group of devices, blocks allotted per stage
    (Asteroid, MobiCom'24). torch.distributed.pipelining needs every stage on one rank (or a regular
    mesh of equal groups), so this schedules by hand: GPipe, every micro-batch forward then every one
    backward. Each micro-batch's rows are cut among a stage's members; a member sends each member of
    the next stage the rows they share (point-to-point, plain tensors of known shape) and gets the
    gradients of those rows back. Every member's loss is weighted by its share of the batch, so the sum
    of the group's gradients (one flat all-reduce per stage) is the one-device gradient."""

    def __init__(self, model: Transformer, cfg, rank, world_size, plan: Plan):
        self.full_shapes = {k: v.shape for k, v in model.state_dict().items()}
        self.layer_ranges = hybrid_layer_ranges(plan, cfg.layers)
        starts = [sum(plan.group_sizes[:s]) for s in range(len(plan.group_sizes) + 1)]
        self.stage_leaders = starts[:-1]
        self.stage = max(s for s in range(len(plan.group_sizes)) if starts[s] <= rank)
        self.stages = len(plan.group_sizes)
        # Every rank creates every group, in the same order: torch.distributed requires it.
        groups = [dist.new_group(list(range(starts[s], starts[s + 1]))) for s in range(self.stages)]
        self.group, self.group_size = groups[self.stage], plan.group_sizes[self.stage]
        _keep_stage(model, self.layer_ranges[self.stage], self.stage == 0, self.stage == self.stages - 1)

        def members(stage):
            if not 0 <= stage < self.stages:
                return []
            return [(starts[stage] + j, hybrid_rows(plan, cfg.batch_size, stage, j))
                    for j in range(plan.group_sizes[stage])]
        self.rows = hybrid_rows(plan, cfg.batch_size, self.stage, rank - starts[self.stage])
        self.previous, self.next = members(self.stage - 1), members(self.stage + 1)
        super().__init__(model, cfg, rank, world_size)

    @property
    def is_last(self) -> bool:
        return self.stage == self.stages - 1

    @staticmethod
    def _shared(mine: range, theirs: range) -> range:
        return range(max(mine.start, theirs.start), min(mine.stop, theirs.stop))

    def _exchange_in(self, peers, micro: int, like: tuple) -> torch.Tensor:
        """This micro-batch's rows from the peers that hold them, in row order."""
        pieces = []
        for peer, rows in peers:
            shared = self._shared(self.rows[micro], rows[micro])
            if len(shared):
                piece = torch.empty(len(shared), *like)
                dist.recv(piece, peer)
                pieces.append(piece)
        return torch.cat(pieces)

    def _exchange_out(self, peers, micro: int, tensor: torch.Tensor, pending: list) -> None:
        mine = self.rows[micro]
        for peer, rows in peers:
            shared = self._shared(mine, rows[micro])
            if len(shared):
                piece = tensor[shared.start - mine.start:shared.stop - mine.start].contiguous()
                pending.append((dist.isend(piece, peer), piece))

    def train_step(self, inputs, targets):
        self.optimizer.zero_grad(set_to_none=True)
        hidden = (self.cfg.seq_len, self.cfg.d_model)
        pending: list = []
        stage_inputs, stage_outputs = [], []
        loss_sum, weight = 0.0, 0.0
        for micro, rows in enumerate(self.rows):
            if self.stage == 0:
                x = inputs[rows.start:rows.stop]
            else:
                x = self._exchange_in(self.previous, micro, hidden).requires_grad_()
            y = self.model(x)
            if self.is_last:
                share = len(rows) / self.cfg.batch_size
                loss = lm_loss(y, targets[rows.start:rows.stop])
                loss_sum += loss.item() * share
                weight += share
                y = loss * share
            else:
                self._exchange_out(self.next, micro, y.detach(), pending)
            stage_inputs.append(x)
            stage_outputs.append(y)
        for micro in reversed(range(len(self.rows))):
            if self.is_last:
                stage_outputs[micro].backward()
            else:
                stage_outputs[micro].backward(self._exchange_in(self.next, micro, hidden))
            if self.stage > 0:
                self._exchange_out(self.previous, micro, stage_inputs[micro].grad, pending)
        for work, _ in pending:
            work.wait()
        if self.group_size > 1:
            grads = [p.grad for p in self.model.parameters()]
            flat = _flatten_dense_tensors(grads)
            dist.all_reduce(flat, group=self.group)
            for grad, reduced in zip(grads, _unflatten_dense_tensors(flat, grads)):
                grad.copy_(reduced)
        self.optimizer.step()
        if self.is_last:
            return StepResult(loss_sum / weight, weight)
        return StepResult(None, 0.0)


TRAINERS = {
    "local": LocalTrainer,
    "dp": DataParallelTrainer,
    "tp": TensorParallelTrainer,
    "sp": SequenceParallelTrainer,
    "pp": PipelineParallelTrainer,
}


def build_trainer(kind: str, cfg: ModelConfig, seed: int, rank: int, world_size: int,
                  checkpoint: Optional[dict] = None, plan: Optional[Plan] = None) -> ShardTrainer:
    """The model is built and loaded whole, as on one device, then parallelised: every plan starts from
    exactly the same weights. A hybrid plan's stages come from `plan`."""
    model = build_model(cfg, seed)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
    if kind == HYBRID:
        trainer = HybridTrainer(model, cfg, rank, world_size, plan)
    else:
        trainer = TRAINERS[kind](model, cfg, rank, world_size)
    if checkpoint is not None and checkpoint["optimizer"]["state"]:
        trainer.load_optimizer_state(checkpoint["optimizer"])
    return trainer
