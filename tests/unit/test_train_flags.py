"""`edgetrain train`'s flags and TrainConfig say the same: every hyperparameter is a flag, with the
config's default (before, the command's --timesteps default was 50,000 and the README's 60,000)."""

import dataclasses

from edgetrain.agents.train import TrainConfig
from edgetrain.app.cli import build_parser


def test_every_train_config_field_is_a_flag_with_the_config_default():
    args = build_parser().parse_args(["train", "--out", "x"])
    for field in dataclasses.fields(TrainConfig):
        assert hasattr(args, field.name), f"--{field.name.replace('_', '-')} is missing"
        value = getattr(args, field.name)
        if field.name == "net_arch":
            value = tuple(int(x) for x in value.split(","))
        assert value == field.default, (field.name, value, field.default)
