"""Plan-independent checkpoints: the full model and optimizer state, keyed by the one-device model's
parameter names, so that a run saved on one plan resumes on any other.

Files are written with torch.save and always read with `weights_only=True`: a checkpoint holds only
tensors, numbers, strings and containers of them.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch

from edgetrain.core.config import ModelConfig
from edgetrain.core.errors import UserError

FORMAT = "edgetrain-checkpoint-v1"
# Model settings that change the weights' shapes or the training maths; a resumed run must match them.
_MUST_MATCH = ("layers", "d_model", "heads", "seq_len", "d_ff", "batch_size", "lr")


def save_checkpoint(path: str, *, step: int, seed: int, model_cfg: ModelConfig, corpus: str,
                    model_state: dict[str, torch.Tensor], optim_state: dict) -> None:
    """Write atomically: a crash mid-write never leaves a truncated checkpoint behind."""
    payload = {
        "format": FORMAT,
        "step": step,
        "seed": seed,
        "model_config": {k: v for k, v in asdict(model_cfg).items() if k != "vocab_size"},
        "corpus": corpus,
        "model": model_state,
        "optimizer": optim_state,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, target)


def load_checkpoint(path: str) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {path}: no such file") from None
    except Exception as exc:  # any unreadable or unsafe file
        raise UserError(f"checkpoint {path}: not a readable edgetrain checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"checkpoint {path}: not an edgetrain checkpoint (expected format {FORMAT})")
    return payload


def check_compatible(payload: dict, path: str, model_cfg: ModelConfig, seed: int) -> None:
    """A resumed run must train the same model on the same batches, or the losses would silently differ."""
    saved = payload["model_config"]
    for key in _MUST_MATCH:
        if saved.get(key) != getattr(model_cfg, key):
            raise UserError(f"checkpoint {path} was trained with model.{key}={saved.get(key)!r}, "
                            f"but this scenario has {getattr(model_cfg, key)!r}")
    if payload["seed"] != seed:
        raise UserError(f"checkpoint {path} was trained with --seed {payload['seed']}, not {seed}")
