"""Checkpoints a user may hand to --resume: damaged, foreign, unsafe or of another model or seed. Each
is refused in one sentence that names the file; nothing is unpickled beyond tensors and plain data."""

import dataclasses
import os
import pickle

import pytest
import torch

from edgetrain.core.errors import UserError
from edgetrain.core.scenario import load_scenario
from edgetrain.runtime.training.checkpoint import check_compatible, load_checkpoint, save_checkpoint

MODEL = load_scenario("smart-home").model


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "good.pt"
    save_checkpoint(str(path), step=7, seed=3, model_cfg=MODEL, corpus="abc123",
                    model_state={"w": torch.arange(6.0)}, optim_state={"state": {}, "param_groups": []})
    return path


def test_a_good_checkpoint_round_trips(checkpoint):
    payload = load_checkpoint(str(checkpoint))
    assert payload["step"] == 7 and payload["corpus"] == "abc123"
    assert torch.equal(payload["model"]["w"], torch.arange(6.0))
    check_compatible(payload, str(checkpoint), MODEL, 3)  # the same model and seed: no complaint


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_file_is_refused_in_one_sentence(checkpoint, damage):
    data = checkpoint.read_bytes()
    checkpoint.write_bytes({"truncated": data[: len(data) // 2], "garbage": os.urandom(4096), "empty": b""}[damage])
    with pytest.raises(UserError, match=rf"checkpoint {checkpoint}: not a readable edgetrain checkpoint"):
        load_checkpoint(str(checkpoint))


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_file_that_would_run_code_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "edgetrain-checkpoint-v1", "model": Payload()}, path, pickle_module=pickle)
    with pytest.raises(UserError, match="not a readable edgetrain checkpoint"):
        load_checkpoint(str(path))


def test_a_torch_file_of_something_else_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(UserError, match="not an edgetrain checkpoint"):
        load_checkpoint(str(path))


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_checkpoint(str(tmp_path / "nope.pt"))


def test_another_model_or_seed_is_refused_naming_the_difference(checkpoint):
    payload = load_checkpoint(str(checkpoint))
    wider = dataclasses.replace(MODEL, d_model=MODEL.d_model * 2)
    with pytest.raises(UserError, match=rf"model.d_model={MODEL.d_model}, but this scenario has {MODEL.d_model * 2}"):
        check_compatible(payload, str(checkpoint), wider, 3)
    with pytest.raises(UserError, match="trained with --seed 3, not 4"):
        check_compatible(payload, str(checkpoint), MODEL, 4)
