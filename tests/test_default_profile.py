"""The profile shipped with smart-home is current: the simulator works out of the box."""

import numpy as np
from gymnasium.utils.env_checker import check_env

from envs.edgetrain_env import EdgeTrainEnv


def test_the_default_env_runs_on_the_shipped_profile():
    env = EdgeTrainEnv()  # smart-home, scenarios/profiles/smart-home.json
    check_env(env)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.array([1] + [1] * 5 + [0] * 3))  # dp on every device
    assert reward < 0 and info["samples"] in (0, 10 * 12)
    assert env.profile["backend"] == "mininet" and len(env.profile["devices"]) == 5
