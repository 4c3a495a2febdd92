import pytest
import torch

from edgetrain.core.errors import UserError
from edgetrain.runtime.training.data import batch_for_step, load_corpus


def test_default_corpus_is_real_python_source():
    corpus = load_corpus(max_bytes=100_000)
    assert len(corpus) == 100_000
    assert b"def " in corpus.data.tobytes()


def test_batches_depend_only_on_seed_and_step():
    corpus = load_corpus(max_bytes=100_000)
    x1, y1 = batch_for_step(corpus, 7, 3, 4, 16)
    x2, y2 = batch_for_step(corpus, 7, 3, 4, 16)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.equal(x1[:, 1:], y1[:, :-1])  # targets are the next bytes
    assert not torch.equal(x1, batch_for_step(corpus, 7, 4, 4, 16)[0])
    assert not torch.equal(x1, batch_for_step(corpus, 8, 3, 4, 16)[0])


def test_user_data_folder_skips_binary_files(tmp_path):
    (tmp_path / "a.txt").write_text("hello edge world " * 100)
    (tmp_path / "b.bin").write_bytes(b"\x00\x01" * 1000)
    corpus = load_corpus(str(tmp_path))
    assert len(corpus) == 1700


def test_missing_or_tiny_user_data_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_corpus(str(tmp_path / "missing"))
    (tmp_path / "small.txt").write_text("hi")
    with pytest.raises(UserError, match="only 2 bytes"):
        load_corpus(str(tmp_path / "small.txt"))
