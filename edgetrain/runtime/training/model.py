"""A GPT-style byte-level Transformer language model, written for one device.

Parallelism is applied from outside (runtime/parallel.py), the torchtitan way. To make that possible
the model tolerates being cut into pipeline stages: the blocks live in a ModuleDict keyed by their
index, so a stage that deletes the blocks it does not own keeps the full model's parameter names, and
`tok_embeddings` / `norm` + `output` may be None on stages that do not hold them.
No dropout: the same seed and batch give bitwise-comparable training on every plan.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgetrain.core.config import ModelConfig


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.head_dim = cfg.head_dim
        self.wq = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.wk = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.wv = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.wo = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        # Hook for sequence parallelism: maps local keys/values to the full sequence's. Identity on one device.
        self.kv_gather = None

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = x.shape
        # -1 heads: under tensor parallelism each rank holds only its share of the heads.
        q = self.wq(x).view(batch, seq, -1, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(batch, seq, -1, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(batch, seq, -1, self.head_dim).transpose(1, 2)
        if self.kv_gather is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            k, v, key_positions = self.kv_gather(k, v, positions)
            causal = key_positions.view(1, -1) <= positions.view(-1, 1)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=causal)
        return self.wo(out.transpose(1, 2).reshape(batch, seq, -1))


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.d_model, cfg.ffn_dim)
        self.w2 = nn.Linear(cfg.ffn_dim, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.gelu(self.w1(x)))


class TransformerBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attention_norm = nn.LayerNorm(cfg.d_model)
        self.attention = Attention(cfg)
        self.ffn_norm = nn.LayerNorm(cfg.d_model)
        self.feed_forward = FeedForward(cfg)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), positions)
        return x + self.feed_forward(self.ffn_norm(x))


class Transformer(nn.Module):
    """tokens (batch, seq) int64 -> logits (batch, seq, 256)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_embeddings = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.layers = nn.ModuleDict({str(i): TransformerBlock(cfg) for i in range(cfg.layers)})
        self.norm = nn.LayerNorm(cfg.d_model)
        self.output = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        # Which absolute positions this module's input covers; sequence parallelism shifts it.
        self.position_offset = 0
        self.apply(_init_weights)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        seq = inputs.shape[1]
        positions = torch.arange(self.position_offset, self.position_offset + seq, device=inputs.device)
        if self.tok_embeddings is not None:
            h = self.tok_embeddings(inputs) + self.pos_embeddings(positions)
        else:
            h = inputs
        for layer in self.layers.values():
            h = layer(h, positions)
        if self.output is None:
            return h
        return self.output(self.norm(h))


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)


def build_model(cfg: ModelConfig, seed: int) -> Transformer:
    """The same seed gives the same initial weights on every device and plan."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = Transformer(cfg)
    torch.random.set_rng_state(generator_state)
    return model


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-byte cross-entropy over every token of the batch."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
