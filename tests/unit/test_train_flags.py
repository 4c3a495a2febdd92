"""`edgetrain train`'s flags and TrainConfig say the same: every hyperparameter is a flag, with the
config's default (before, the command's --timesteps default was 50,000 and the README's 60,000)."""

import dataclasses

import pytest

from conftest import run_cli
from edgetrain.agents.train import TrainConfig
from edgetrain.app.cli import build_parser


def test_every_train_config_field_is_a_flag_with_the_config_default():
    args = build_parser().parse_args(["train", "--out", "x"])
    for field in dataclasses.fields(TrainConfig):
        assert hasattr(args, field.name), f"--{field.name.replace('_', '-')} is missing"
        value = getattr(args, field.name)
        if field.name == "net_arch":
            value = tuple(int(x) for x in value.split(","))
        if field.name == "busy_devices":  # a repeatable flag: a list on the command line
            value = tuple(value)
        assert value == field.default, (field.name, value, field.default)


@pytest.mark.parametrize("argv, said", [
    (["train", "--scenario", "smart-home", "--busy-device", "orin-nano"], "it needs --online-steps"),
    (["train", "--scenario", "smart-home", "--online-steps", "4", "--busy-device", "toaster"],
     "--busy-device toaster: not a device of smart-home"),
    (["train", "--scenario", "smart-home", "--timesteps", "0"], "--timesteps 0 only with --init and --online-steps"),
    (["deploy", "--policy", "greedy", "--cluster", "tests/data/home-cluster.yaml", "--busy-device", "a"],
     "real devices are as busy as they are"),
])
def test_busy_devices_and_online_only_fine_tuning_are_refused_where_they_make_no_sense(argv, said, tmp_path):
    result = run_cli(*argv, "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and said in result.stderr and "Traceback" not in result.stderr, result.stderr
