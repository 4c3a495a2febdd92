"""Training text as raw bytes, and the deterministic batches drawn from it.

The default corpus exists on every machine: the Python standard library's own source files, read at
run time. `--data PATH` takes a user's text file or a folder of them instead. Batches depend only on
(seed, step), so every plan, and a run resumed on another plan, sees exactly the same samples.
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgetrain.core.errors import UserError

# Enough text for millions of distinct samples, small enough to read in a fraction of a second.
DEFAULT_CORPUS_BYTES = 8 * 1024 * 1024
_SKIPPED_STDLIB_DIRS = {"test", "tests", "site-packages", "idlelib", "lib2to3", "__pycache__"}


@dataclass(frozen=True)
class Corpus:
    data: np.ndarray          # uint8
    source: str
    fingerprint: str          # sha256 prefix: shards of one run must agree on it

    def __len__(self) -> int:
        return int(self.data.shape[0])


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py")
                  if not _SKIPPED_STDLIB_DIRS.intersection(p.relative_to(root).parts[:-1]))


def _user_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    raise UserError(f"--data {path}: no such file or folder")


def load_corpus(path: str | None = None, max_bytes: int | None = None) -> Corpus:
    """The stdlib corpus when path is None, else the user's text (files with NUL bytes are skipped)."""
    if path is None:
        files, source, limit = _stdlib_files(), "python-stdlib", max_bytes or DEFAULT_CORPUS_BYTES
    else:
        files, source, limit = _user_files(Path(path)), str(path), max_bytes
    chunks, size = [], 0
    for file in files:
        try:
            raw = file.read_bytes()
        except OSError:
            continue
        if b"\x00" in raw:  # binary, not text
            continue
        chunks.append(raw)
        size += len(raw)
        if limit is not None and size >= limit:
            break
    text = b"".join(chunks)[:limit] if limit else b"".join(chunks)
    if len(text) < 1024:
        raise UserError(f"--data {source}: only {len(text)} bytes of text, need at least 1024")
    return Corpus(np.frombuffer(text, dtype=np.uint8), source, hashlib.sha256(text).hexdigest()[:16])


def batch_for_step(corpus: Corpus, seed: int, step: int, batch_size: int, seq_len: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of one training step: (inputs, targets), each (batch_size, seq_len) int64."""
    if len(corpus) <= seq_len + 1:
        raise UserError(f"corpus {corpus.source} is shorter than one sequence ({seq_len + 1} bytes)")
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, len(corpus) - seq_len - 1, size=batch_size)
    windows = np.stack([corpus.data[s:s + seq_len + 1] for s in starts]).astype(np.int64)
    tokens = torch.from_numpy(windows)
    return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
